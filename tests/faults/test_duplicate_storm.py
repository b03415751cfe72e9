"""Fault campaign, scenario 1: a duplicate storm across two app instances.

Two gunicorn servers on the same database; every confirmation is delivered several times to
each of them, all at once. Each TransID must be credited exactly once, every other delivery
counted as a redelivery, and the invariants hold.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from tests.support.factories import make_fleet
from tests.support.faults import (
    assert_exactly_once,
    money_counts,
    post_all,
    receipts,
    report,
    scale,
)
from tests.support.invariants import assert_invariants
from tests.support.live_server import LiveServer, live_server_process
from tuktuk.core.models import Event, EventTitle
from tuktuk.mpesa.models import Callback, CallbackState

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def test_every_confirmation_sent_to_both_instances_many_times_is_credited_once(
    live_server_proc: LiveServer,
) -> None:
    size = scale()
    accounts = [d.vehicle.mpesa_account for d in make_fleet()]  # type: ignore[union-attr]
    payloads = receipts("STORM", size.storm_receipts, accounts=accounts, seed=11)
    # The session's server and one more, on the same database.
    with live_server_process(workers=1, threads=4) as second:
        urls = [live_server_proc.c2b_url("confirmation"), second.c2b_url("confirmation")]
        jobs = [
            (url, json.dumps(payload).encode(), "application/json")
            for payload in payloads
            for url in urls
            for _ in range(size.storm_copies)
        ]
        random.Random(5).shuffle(jobs)  # copies of one receipt meet in flight on both servers
        answers = post_all(jobs, concurrency=size.concurrency)
    assert Counter(r.status_code for r in answers) == {200: len(jobs)}
    sent = {p["TransID"] for p in payloads}
    counts = money_counts(sent=sent, acknowledged=sent)
    counts["deliveries"] = len(jobs)
    report("duplicate-storm", counts)
    assert_exactly_once(counts)
    # Every delivery stored; one per receipt posted, each of the others counted once.
    redelivered = len(jobs) - len(sent)
    states = Counter(Callback.objects.values_list("state", flat=True))
    assert states == {CallbackState.PROCESSED: len(sent), CallbackState.DUPLICATE: redelivered}
    assert counts["redeliveries"] == redelivered
    prevented = Event.objects.filter(title=EventTitle.DUPLICATE_PREVENTED).count()
    assert prevented == redelivered
    assert_invariants(sent_trans_ids=sorted(sent))
