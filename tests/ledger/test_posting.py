"""The posting service against the real database: split, entry, balance, payout, duplicates."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from tests.support.factories import make_driver
from tests.support.invariants import assert_invariants
from tuktuk.core.db import atomic_with_retry
from tuktuk.core.models import Event
from tuktuk.fleet.models import Driver, FleetSettings, Override
from tuktuk.ledger.duty import vehicle_assign_by
from tuktuk.ledger.models import EntryKind, LedgerEntry, Transaction, TransactionStatus
from tuktuk.ledger.services import IncomingPayment, PostingOutcome, payment_post
from tuktuk.payouts.models import Payout, PayoutState

pytestmark = pytest.mark.django_db(transaction=True)


def pay(trans_id: str, amount: str, account: str = "TUK001") -> PostingOutcome:
    payment = IncomingPayment(trans_id=trans_id, amount=Decimal(amount), account_reference=account)
    return payment_post(payment=payment).outcome


def test_payment_posts_split_entry_balance_and_held_payout() -> None:
    driver = make_driver(1)
    assert pay("QK1", "155") is PostingOutcome.POSTED
    tx = Transaction.objects.get(trans_id="QK1")
    assert (tx.driver_share, tx.target_contribution) == (Decimal("77.00"), Decimal("78.00"))
    assert tx.status == TransactionStatus.COMPLETED and tx.driver == driver
    entry = LedgerEntry.objects.get(transaction=tx)
    assert (entry.kind, entry.amount, entry.business_day) == (
        EntryKind.CONTRIBUTION,
        Decimal("78.00"),
        tx.business_day,
    )
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("78.00")
    assert driver.left_to_target == Decimal("2922.00")
    payout = Payout.objects.get(transaction=tx)
    assert (payout.amount, payout.state, payout.phone) == (
        Decimal("77.00"),
        PayoutState.HELD,  # instant payouts are off by default
        driver.mpesa_number,
    )
    assert_invariants(sent_trans_ids=["QK1"])


def test_instant_payout_override_makes_payout_pending() -> None:
    make_driver(1, instant_payout=Override.ENABLE)
    pay("QK2", "100")
    assert Payout.objects.get().state == PayoutState.PENDING


def test_account_is_matched_trimmed_and_case_insensitively() -> None:
    make_driver(1)
    assert pay("QK3", "100", account="  tuk001 ") is PostingOutcome.POSTED


def test_sequential_duplicate_is_a_no_op_with_an_event() -> None:
    driver = make_driver(1)
    assert pay("QK4", "200") is PostingOutcome.POSTED
    assert pay("QK4", "200") is PostingOutcome.DUPLICATE
    assert pay("QK4", "999") is PostingOutcome.DUPLICATE  # same receipt, different amount
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("100.00")
    assert Transaction.objects.count() == 1 and Payout.objects.count() == 1
    assert Event.objects.filter(title="Duplicate Transaction Prevented").count() == 2
    assert_invariants()


def test_unknown_account_is_kept_unmatched_and_credits_nobody() -> None:
    driver = make_driver(1)
    assert pay("QK5", "300", account="NOPE") is PostingOutcome.UNMATCHED
    assert pay("QK5", "300", account="NOPE") is PostingOutcome.DUPLICATE
    tx = Transaction.objects.get(trans_id="QK5")
    assert tx.status == TransactionStatus.UNMATCHED and tx.driver is None
    assert not LedgerEntry.objects.exists() and not Payout.objects.exists()
    driver.refresh_from_db()
    assert driver.current_balance == 0
    assert Event.objects.filter(title="Uncaptured Payment").count() == 1


def test_vehicle_without_driver_is_unmatched() -> None:
    make_driver(1)
    vehicle_assign_by(vehicle_id="TUK-001", driver_id=None, actor="test")
    assert pay("QK6", "300") is PostingOutcome.UNMATCHED


def test_target_met_pays_the_driver_everything() -> None:
    driver = make_driver(1, daily_target=Decimal("100"))
    pay("QK7", "300")  # 150 to target: met
    pay("QK8", "300")
    second = Transaction.objects.get(trans_id="QK8")
    assert (second.driver_share, second.target_contribution) == (Decimal("300"), Decimal("0"))
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("150.00") and driver.left_to_target == 0
    assert LedgerEntry.objects.get(transaction=second).amount == 0  # entry even at zero
    assert_invariants()


def test_sharing_disabled_keeps_splitting_after_target() -> None:
    make_driver(1, daily_target=Decimal("100"), target_sharing=Override.DISABLE)
    pay("QK9", "300")
    pay("QK10", "300")
    assert Transaction.objects.get(trans_id="QK10").driver_share == Decimal("150")


def test_global_settings_apply_without_overrides() -> None:
    fleet = FleetSettings.load()
    fleet.global_fare_percentage = Decimal("30")
    fleet.save()
    make_driver(1)
    pay("QK11", "100")
    assert Transaction.objects.get().driver_share == Decimal("30")


@pytest.mark.skipif(connection.vendor == "sqlite", reason="BEGIN IMMEDIATE: no deadlocks on SQLite")
def test_deadlock_is_retried_until_both_transactions_commit() -> None:
    """Two transactions lock two driver rows in opposite orders: the database kills one
    (PostgreSQL 40P01, MariaDB 1213) and atomic_with_retry runs it again."""
    first, second = make_driver(1), make_driver(2)
    both_hold_one = threading.Barrier(2, timeout=30)
    attempts: list[str] = []
    errors: list[BaseException] = []

    def worker(name: str, order: list[int]) -> None:
        def work() -> None:
            attempts.append(name)
            Driver.objects.select_for_update().get(pk=order[0])
            if attempts.count(name) == 1:
                both_hold_one.wait()  # first attempt only: make the lock cycle certain
            Driver.objects.select_for_update().get(pk=order[1])
            Driver.objects.filter(pk__in=order).update(consecutive_misses=1)

        try:
            atomic_with_retry(work, attempts=5, label=name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=worker, args=("a", [first.pk, second.pk])),
        threading.Thread(target=worker, args=("b", [second.pk, first.pk])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(attempts) == 3  # one of the two was chosen as the deadlock victim and retried
    assert set(Driver.objects.values_list("consecutive_misses", flat=True)) == {1}


def test_ledger_entries_refuse_update_even_around_the_orm() -> None:
    make_driver(1)
    pay("QK12", "100")
    entry = LedgerEntry.objects.get()
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE ledger_ledgerentry SET amount = amount + 1 WHERE id = %s", [entry.pk]
            )
    with pytest.raises(Exception, match="append-only"):
        entry.save()
    with pytest.raises(Exception, match="append-only"):
        entry.delete()
    assert LedgerEntry.objects.get().amount == Decimal("50.00")
