"""SIGKILL of a posting engine in the middle of a batch: nothing lost, nothing doubled, the batch
is posted again by the next engine.

To stop the engine at a known point with work already written, the test holds an uncommitted
transaction row with the TransID of the batch's last confirmation: the engine posts the others
(written, not committed), then waits on that row's unique key. The test sees the wait in the
server's lock tables, checks the engine's transaction has written rows, kills it, and rolls its
own row back.
"""

from __future__ import annotations

import signal
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tests.support.engines import Engines, engines_running, store, wait_drained
from tests.support.factories import make_driver
from tests.support.invariants import assert_invariants
from tests.support.payouts import wait_until
from tuktuk.ledger.models import Transaction, TransactionStatus, TransactionType
from tuktuk.mpesa.models import Callback, CallbackState

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # The fares' business day is the pinned one, not the hour the suite runs at (a midnight in
    # the middle of the test would close the day under the engine).
    pytest.mark.usefixtures("business_hours"),
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="SQLite has one writer: a batch holds the database's write lock from its claim "
        "to its commit, so there is no row to make the engine wait on half way",
    ),
]

FARES = 40


def _engine_waiting_with_writes() -> bool:
    """Another session waits on a row lock, and its transaction has written rows."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The statistics views are a snapshot taken once per transaction: take a new one.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND backend_xid IS NOT NULL "
                "AND pid <> pg_backend_pid()"
            )
        else:
            cursor.execute(
                "SELECT count(*) FROM information_schema.INNODB_TRX "
                "WHERE trx_state = 'LOCK WAIT' AND trx_rows_modified > 0"
            )
        return bool(cursor.fetchone()[0])


class _RollBack(Exception):
    pass


def test_an_engine_killed_mid_batch_loses_and_doubles_nothing() -> None:
    drivers = [make_driver(n, daily_target=Decimal("2000")) for n in (1, 2, 3)]
    trans_ids = [f"KILL{n:03d}" for n in range(FARES)]
    for n, trans_id in enumerate(trans_ids):
        store(trans_id, "100", account=f"TUK{n % 3 + 1:03d}")
    engines = Engines()
    try:
        with transaction.atomic():
            # The batch's last confirmation collides with this uncommitted row.
            Transaction.objects.create(
                trans_id=trans_ids[-1],
                amount=Decimal("1"),
                account_reference="HOLD",
                status=TransactionStatus.UNMATCHED,
                transaction_type=TransactionType.PAYMENT,
                received_at=timezone.now(),
            )
            (victim,) = engines.start(1, "--batch-size", str(FARES))
            wait_until(_engine_waiting_with_writes, timeout=60, what="the engine to block")
            victim.send_signal(signal.SIGKILL)
            assert victim.wait(timeout=30) == -signal.SIGKILL
            raise _RollBack
    except _RollBack:
        pass
    finally:
        engines.stop()
    # Killed before its commit: none of its writes are visible, every confirmation is stored.
    assert Transaction.objects.count() == 0
    assert Counter(Callback.objects.values_list("state", flat=True)) == {
        CallbackState.RECEIVED: FARES
    }
    with engines_running(1):
        wait_drained()
    assert sorted(Transaction.objects.values_list("trans_id", flat=True)) == trans_ids
    assert Counter(Callback.objects.values_list("state", flat=True)) == {
        CallbackState.PROCESSED: FARES
    }
    for driver in drivers:
        driver.refresh_from_db()
        paid = Transaction.objects.filter(driver=driver)
        assert driver.current_balance == sum(t.target_contribution for t in paid)
    assert_invariants(sent_trans_ids=trans_ids)
