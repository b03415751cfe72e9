"""Fault campaign, scenario 3: kill -9 of the worker mid-payout-batch.

Real `tuktuk worker` processes against the Daraja simulator over HTTP, our live server
receiving the result callbacks: the worker is killed inside a B2C call with its batch claimed,
then restarted; every payout is paid exactly once (tests/support/payouts.payout_worker_kill).
"""

from __future__ import annotations

import pytest

from tests.support.faults import report, scale
from tests.support.invariants import assert_invariants
from tests.support.live_server import LiveServer
from tests.support.payouts import payout_worker_kill

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def test_worker_killed_mid_batch_and_restarted_pays_each_exactly_once(
    live_server_proc: LiveServer,
) -> None:
    size = scale()
    counts = payout_worker_kill(live_server_proc, payouts=size.payouts, kills=size.payout_kills)
    report("worker-kill", counts)
    assert counts["credited"] == counts["sent"] and counts["lost"] == 0
    assert counts["double_paid"] == 0 and counts["stranded_sending"] >= size.payout_kills
    assert_invariants()
