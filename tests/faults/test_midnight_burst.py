"""Fault campaign, scenario 5: a burst of confirmations across midnight, on a shifted clock.

Two servers and a `tuktuk worker` run under libfaketime with their clock a few seconds before
00:00 Africa/Nairobi (the default day close); a paced burst of confirmations to both servers
spans the cutoff while the worker closes the day. From the database afterwards: every fare is
in the business day in which its confirmation was stored (invariant 8), each day close's
balance is the sum of its day's entries, and `tuktuk reconcile --all` finds no discrepancy.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from contextlib import ExitStack

import pytest
import time_machine

from tests.support.clock import NAIROBI
from tests.support.factories import make_driver
from tests.support.faults import (
    MpesaSender,
    assert_exactly_once,
    live_servers,
    money_counts,
    next_midnight,
    real_time,
    receipts,
    replay_callbacks,
    report,
    scale,
    shifted_env,
    tuktuk,
)
from tests.support.invariants import assert_invariants
from tests.support.live_server import child_env
from tests.support.payouts import Workers, wait_until
from tuktuk.core.models import Event, EventTitle
from tuktuk.ledger.models import DayClose, Transaction

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

DRIVERS = 3
BURST_SECONDS = 4.0  # the burst runs from 2 s before the cutoff to 2 s after it
SETTLE_SECONDS = "3"  # TUKTUK_DAY_CLOSE_SETTLE_SECONDS of the children


def test_a_burst_across_midnight_files_every_fare_in_the_day_it_was_received() -> None:
    size = scale()
    try:
        shifted_env(0)
    except pytest.UsageError as why:
        pytest.skip(f"needs libfaketime (apt-get install faketime; .ci/run installs it): {why}")
    midnight = next_midnight(real_time(), zone=NAIROBI)
    day = midnight.date() - dt.timedelta(days=1)
    with time_machine.travel(midnight - dt.timedelta(minutes=1), tick=False):
        accounts = [f"TUK{n:03d}" for n in range(1, DRIVERS + 1)]
        for n in range(1, DRIVERS + 1):
            make_driver(n)
    payloads = receipts("MID", size.midnight_receipts, accounts=accounts, seed=51)
    lead = 30.0  # seconds of shifted clock before the cutoff for the processes to start
    with ExitStack() as stack:
        while True:
            booting = real_time()
            offset = (midnight.timestamp() - lead) - booting
            env = {**shifted_env(offset), "TUKTUK_DAY_CLOSE_SETTLE_SECONDS": SETTLE_SECONDS}
            worker = Workers(env)
            worker.start(1)
            stack.callback(worker.kill)
            servers = stack.enter_context(live_servers(2, workers=1, threads=4, extra_env=env))
            start_in = (midnight.timestamp() - BURST_SECONDS / 2) - (real_time() + offset)
            if start_in > 0:
                break
            stack.close()  # the machine was too slow to start them in time: again, earlier
            lead = (real_time() - booting) * 1.5 + 5
        time.sleep(start_in)  # until the shifted clocks read 23:59:58
        urls = itertools.cycle([s.c2b_url("confirmation") for s in servers])
        sender = MpesaSender(target=lambda attempt: next(urls), concurrency=size.concurrency)
        sender.run(payloads, spread_over=BURST_SECONDS)
        wait_until(
            lambda: DayClose.objects.filter(business_day=day).count() == DRIVERS,
            timeout=120,
            what=f"the worker closing {day}",
        )
        worker.kill()
        # Whatever gave up waiting for the close is the worker's to replay (shifted clock).
        replayed = replay_callbacks(child_env(**env))
        reconciled = tuktuk("reconcile", "--all", "--json", env=child_env(**env))
    counts = money_counts(sent=sender.sent, acknowledged=sender.acked)
    before = Transaction.objects.filter(business_day=day).count()
    after = Transaction.objects.filter(business_day=day + dt.timedelta(days=1)).count()
    counts.update(
        before_cutoff=before, after_cutoff=after, deliveries=sum(sender.answers().values())
    )
    report("midnight-burst", counts)
    print(replayed)
    assert before > 0 and after > 0, "the burst did not cross the cutoff"
    assert_exactly_once(counts)
    assert not Event.objects.filter(title=EventTitle.CREDITED_AFTER_CLOSE).exists()
    assert_invariants(sent_trans_ids=sorted(sender.sent))  # 8: business day of received_at
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert json.loads(reconciled.stdout)["drivers_with_discrepancies"] == 0
