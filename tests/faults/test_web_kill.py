"""Fault campaign, scenario 2: kill -9 of a web server while confirmations are in flight.

The sender retries a non-200 answer or a connection error as M-Pesa does: to the second
instance (`second-instance`), or to the same address once an operator has restarted the server
(`restart`). Whatever the kill interrupted (a request stored but not posted, posted but not
answered) must end credited exactly once: retries are duplicates, and a confirmation stored but
left `received` by the kill is posted (or marked duplicate) by the worker's replay.

On SQLite this is also scenario 4's: the server dies inside write transactions and the WAL
database must pass SQLite's integrity check after the restart.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from django.db import connection

from tests.support.factories import make_fleet
from tests.support.faults import (
    MpesaSender,
    assert_exactly_once,
    join_sender,
    money_counts,
    receipts,
    replay_callbacks,
    report,
    scale,
    server_kill,
)
from tests.support.invariants import assert_invariants
from tests.support.live_server import LiveServer, child_env, live_server_process
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def kill_web_mid_flight(*, spare: LiveServer, recovery: str, seed: int) -> dict[str, int]:
    size = scale()
    accounts = [d.vehicle.mpesa_account for d in make_fleet()]  # type: ignore[union-attr]
    payloads = receipts(f"KILL{seed}", size.kill_receipts, accounts=accounts, seed=seed)
    with ExitStack() as stack:
        victim = stack.enter_context(live_server_process(workers=2, threads=4, new_session=True))
        if recovery == "second-instance":
            urls = [victim.c2b_url("confirmation"), spare.c2b_url("confirmation")]
        else:
            urls = [victim.c2b_url("confirmation")]
        # The first attempt goes to the victim, retries alternate (a load balancer's pick).
        sender = MpesaSender(target=lambda attempt: urls[attempt % len(urls)],
                             concurrency=size.concurrency)  # fmt: skip
        thread = sender.run_in_background(payloads)
        assert sender.acknowledged.reached(len(payloads) // 4).wait(120)
        server_kill(victim)  # mid-flight: about 3/4 of the receipts still to come
        if recovery == "restart":
            assert sender.failures.reached(size.concurrency).wait(60)
            port = int(victim.url.rsplit(":", 1)[1])
            stack.enter_context(live_server_process(workers=2, threads=4, port=port))
        join_sender(thread, timeout=600)
    stranded = Callback.objects.filter(
        kind=CallbackKind.C2B_CONFIRMATION, state=CallbackState.RECEIVED
    ).count()
    replayed = replay_callbacks(child_env())
    counts = money_counts(sent=sender.sent, acknowledged=sender.acked)
    answers = sender.answers()
    counts.update(
        deliveries=sum(answers.values()),
        retried=sum(n for answer, n in answers.items() if answer != "200"),
        stranded_received=stranded,
    )
    report(f"web-kill-{recovery}", counts)
    print(replayed)
    assert counts["retried"] > 0, "the kill interrupted nothing: the scenario proves nothing"
    assert_exactly_once(counts)
    assert_invariants(sent_trans_ids=sorted(sender.sent))
    if connection.vendor == "sqlite":
        # Scenario 4 on SQLite: killed inside write transactions, the WAL file recovers.
        with connection.cursor() as cursor:
            assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert cursor.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert cursor.execute("PRAGMA foreign_key_check").fetchall() == []
    return counts


@pytest.mark.parametrize(
    "recovery",
    [
        "second-instance",
        pytest.param(
            "restart",
            marks=pytest.mark.skipif(
                connection.vendor != "sqlite",
                reason="the restart is SQLite's crash scenario (WAL); on PostgreSQL and MariaDB "
                "the retry to the second instance covers it and the database crash is its own",
            ),
        ),
    ],
)
def test_kill_9_of_a_web_server_mid_flight_credits_every_acknowledged_receipt_once(
    live_server_proc: LiveServer, recovery: str
) -> None:
    # The second instance is the session's server, on the same database.
    kill_web_mid_flight(spare=live_server_proc, recovery=recovery, seed=21)
