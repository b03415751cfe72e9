"""Payouts exactly once, end to end: real `tuktuk worker` processes, the Daraja simulator over
HTTP, and our live server receiving its result callbacks, on the real database.

The worker killed mid-batch (kill -9, then restarted) is the fault campaign's scenario 3:
tests/faults/test_worker_kill.py, through tests/support/payouts.payout_worker_kill."""

from __future__ import annotations

import signal

import httpx
import pytest
from django.db import connection
from django.db.models import Count
from django.test import override_settings

from tests.support.invariants import assert_invariants
from tests.support.live_server import LiveServer
from tests.support.payouts import (
    Workers,
    all_payouts,
    assert_paid_exactly_once,
    daraja_env,
    daraja_settings,
    make_payouts,
    simulator,
    wait_until,
)
from tuktuk.backoffice.worker import WorkerState, worker_tick
from tuktuk.core.models import Event
from tuktuk.mpesa import daraja
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.payouts.models import Payout, PayoutState
from tuktuk.payouts.services import payouts_release, payouts_work

pytestmark = pytest.mark.django_db(transaction=True)
multi_worker = pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite runs one worker (no SKIP LOCKED); the multi-worker races run on "
    "PostgreSQL and MariaDB",
)


@multi_worker
@pytest.mark.parametrize("workers", [2, 4])
def test_workers_racing_on_1000_payouts_pay_each_exactly_once(
    live_server_proc: LiveServer, workers: int
) -> None:
    make_payouts(1000)
    with simulator() as sim:
        crew = Workers(daraja_env(sim, live_server_proc, TUKTUK_PAYOUT_BATCH_SIZE="10"))
        crew.start(workers)
        try:
            wait_until(all_payouts(PayoutState.COMPLETED), timeout=240, what="1000 payouts")
        finally:
            crew.kill(signal.SIGTERM)
        assert sim.wait_for_callbacks(30)
        assert_paid_exactly_once(sim)
    claimants = Payout.objects.values("claimed_by").annotate(n=Count("id"))
    assert len(claimants) >= 2, list(claimants)  # they really raced
    assert_invariants()


def test_duplicate_and_out_of_order_result_callbacks(live_server_proc: LiveServer) -> None:
    make_payouts(6, drivers=1)
    with simulator() as sim, daraja_settings(sim, live_server_proc):
        sim.script("duplicate_callback", "out_of_order", "duplicate_callback", "out_of_order")
        client = daraja.DarajaClient()
        report = payouts_work(gateway=client, worker="t")
        assert report.claimed == 6
        assert sim.wait_for_callbacks(30)
        wait_until(all_payouts(PayoutState.COMPLETED), timeout=30, what="results")
        assert_paid_exactly_once(sim)
    results = Callback.objects.filter(kind=CallbackKind.B2C_RESULT)
    assert results.filter(state=CallbackState.DUPLICATE).count() == 2
    assert results.filter(state=CallbackState.PROCESSED).count() == 6


def test_timeout_is_unknown_never_resent_then_resolved_by_status_query(
    live_server_proc: LiveServer,
) -> None:
    make_payouts(3, drivers=1)
    with (
        simulator(hang_seconds=3) as sim,
        daraja_settings(sim, live_server_proc, MPESA_TIMEOUT_SECONDS=0.5),
    ):
        sim.script("hang", "timeout", "ok")
        client = daraja.DarajaClient()
        with override_settings(PAYOUT_STATUS_QUERY=False):
            payouts_work(gateway=client, worker="t")
            assert sim.wait_for_callbacks(30)
            # No answer in time: unknown; the queue-timeout notice: unknown, not failed.
            states = dict(Payout.objects.values_list("originator_conversation_id", "state"))
            assert states["TTL-PAY000001"] == PayoutState.UNKNOWN
            assert states["TTL-PAY000000"] in (PayoutState.UNKNOWN, PayoutState.COMPLETED)
            payouts_work(gateway=client, worker="t")  # a later pass resends nothing
        sent = [r["originator_conversation_id"] for r in sim.state()["b2c_requests"]]
        assert sorted(sent) == ["TTL-PAY000000", "TTL-PAY000001", "TTL-PAY000002"]
        # The status query settles what M-Pesa knows: one paid, one failed.
        payouts_work(gateway=client, worker="t")
        assert sim.wait_for_callbacks(30)
    states = dict(Payout.objects.values_list("originator_conversation_id", "state"))
    assert states == {
        "TTL-PAY000000": PayoutState.COMPLETED,
        "TTL-PAY000001": PayoutState.FAILED,
        "TTL-PAY000002": PayoutState.COMPLETED,
    }


def test_oauth_token_expiring_mid_batch_is_renewed_and_nothing_is_paid_twice(
    live_server_proc: LiveServer,
) -> None:
    make_payouts(20, drivers=2)
    with simulator() as sim, daraja_settings(sim, live_server_proc, PAYOUT_BATCH_SIZE=10):
        client = daraja.DarajaClient()
        first = Payout.objects.order_by("pk")[:10]
        Payout.objects.exclude(pk__in=list(first.values_list("pk", flat=True))).update(
            state=PayoutState.HELD
        )
        payouts_work(gateway=client, worker="t")
        # Daraja forgets the cached token mid-run (the control endpoint, over HTTP).
        assert httpx.post(f"{sim.url}/sim/expire-tokens").status_code == 200
        payouts_release(actor="t", everything=True)
        payouts_work(gateway=client, worker="t")
        assert sim.wait_for_callbacks(30)
        wait_until(all_payouts(PayoutState.COMPLETED), timeout=30, what="results")
        assert sim.state()["tokens_issued"] == 2
        assert_paid_exactly_once(sim)


def test_instant_payouts_off_hold_until_released_once(live_server_proc: LiveServer) -> None:
    make_payouts(5, drivers=1, instant=False)
    with simulator() as sim, daraja_settings(sim, live_server_proc):
        client = daraja.DarajaClient()
        assert payouts_work(gateway=client, worker="t").claimed == 0
        assert set(Payout.objects.values_list("state", flat=True)) == {PayoutState.HELD}
        assert payouts_release(actor="ops", everything=True) == 5
        assert payouts_release(actor="ops", everything=True) == 0
        payouts_work(gateway=client, worker="t")
        assert sim.wait_for_callbacks(30)
        wait_until(all_payouts(PayoutState.COMPLETED), timeout=30, what="results")
        assert_paid_exactly_once(sim)


def test_refused_requests_are_retried_then_failed_with_an_alert(
    live_server_proc: LiveServer,
    smtp,  # type: ignore[no-untyped-def]
) -> None:
    inbox, _ = smtp
    make_payouts(1, drivers=1)

    with (
        simulator() as sim,
        daraja_settings(sim, live_server_proc, PAYOUT_MAX_ATTEMPTS=2),
        override_settings(ALERT_EMAILS=["ops@fleet.example"]),
    ):
        sim.script("refuse", "refuse")
        state = WorkerState(client=daraja.DarajaClient())
        worker_tick(state)
        payout = Payout.objects.get()
        assert payout.state == PayoutState.PENDING and payout.next_attempt_at is not None
        Payout.objects.filter(pk=payout.pk).update(next_attempt_at=None)  # backoff elapsed
        report = worker_tick(state)
        assert report["payouts"]["failed"] == 1 and report["payouts"]["failure_alert_sent"]
    payout.refresh_from_db()
    assert payout.state == PayoutState.FAILED and "refused 2 times" in payout.result_desc
    assert Event.objects.filter(title="Payout Failed").count() == 1
    assert inbox.arrived.wait(10) and len(inbox.alerts) == 1
    assert sim.state()["payments"] == {} or not any(
        p["paid"] for p in sim.state()["payments"].values()
    )
