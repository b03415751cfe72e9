"""Credit latency (mpesa.selectors.credit_latency): from a C2B confirmation's arrival
(received_at) to the balance including it (processed_at), by SQL buckets, on every database."""

from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from tests.support.clock import nairobi
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.mpesa.selectors import (
    CREDIT_LATENCY_BUCKETS,
    MicrosecondsBetween,
    credit_latency,
    latency_percentile,
)

pytestmark = pytest.mark.django_db

SINCE = nairobi(2026, 3, 10, 9)
UNTIL = nairobi(2026, 3, 10, 10)
NOW = nairobi(2026, 3, 10, 10, 5)


def callback(
    *,
    processed_at: dt.datetime | None,
    latency: dt.timedelta | float = 0.0,
    state: str = CallbackState.PROCESSED,
    kind: str = CallbackKind.C2B_CONFIRMATION,
    received_at: dt.datetime | None = None,
) -> Callback:
    """A stored callback posted `latency` (seconds or a timedelta) after it was received."""
    if not isinstance(latency, dt.timedelta):
        latency = dt.timedelta(seconds=latency)
    if received_at is None:
        assert processed_at is not None
        received_at = processed_at - latency
    return Callback.objects.create(
        kind=kind, state=state, received_at=received_at, processed_at=processed_at
    )


def credited_in_window(latencies: list[float]) -> None:
    """One confirmation per latency, posted at staggered moments inside [SINCE, UNTIL)."""
    for n, seconds in enumerate(latencies):
        callback(processed_at=SINCE + dt.timedelta(seconds=10 + n), latency=seconds)


def test_known_latencies_give_counts_percentiles_and_the_exact_maximum() -> None:
    # 10 credits: p50 is the 5th fastest (0.9 s, in the 1 s bucket), p99 the 10th (42.5 s,
    # in the 60 s bucket, capped at the exact maximum 42.5).
    credited_in_window([0.03, 0.2, 0.2, 0.4, 0.9, 1.5, 1.5, 4.0, 12.0, 42.5])
    latency = credit_latency(since=SINCE, until=UNTIL, now=NOW)
    assert latency.credited == 10
    assert latency.p50_seconds == 1.0
    assert latency.p99_seconds == 42.5
    assert latency.max_seconds == 42.5
    cumulative = dict(latency.buckets)
    assert cumulative[0.05] == 1
    assert cumulative[0.25] == 3
    assert cumulative[0.5] == 4
    assert cumulative[1] == 5
    assert cumulative[2] == 7
    assert cumulative[5] == 8
    assert cumulative[30] == 9
    assert cumulative[60] == 10
    assert latency.buckets[-1] == (math.inf, 10)
    assert [bound for bound, _n in latency.buckets] == [*CREDIT_LATENCY_BUCKETS, math.inf]
    counts = [n for _bound, n in latency.buckets]
    assert counts == sorted(counts)  # cumulative


def test_p99_is_the_slow_bucket_only_when_more_than_one_in_a_hundred_is_slow() -> None:
    credited_in_window([0.3] * 99 + [400.0])
    latency = credit_latency(since=SINCE, until=UNTIL, now=NOW)
    assert (latency.credited, latency.p50_seconds, latency.p99_seconds) == (100, 0.5, 0.5)
    assert latency.max_seconds == 400.0
    callback(processed_at=SINCE + dt.timedelta(minutes=30), latency=400.0)
    latency = credit_latency(since=SINCE, until=UNTIL, now=NOW)
    assert (latency.credited, latency.p99_seconds) == (101, 400.0)  # 600 s bucket, capped


def test_a_latency_on_a_bucket_bound_counts_in_that_bucket() -> None:
    # Exact to the microsecond on each database: 1 s is in "<= 1 s", 1.000001 s is not.
    credited_in_window([1.0])
    latency = credit_latency(since=SINCE, until=UNTIL, now=NOW)
    assert dict(latency.buckets)[1] == 1
    assert latency.p50_seconds == latency.max_seconds == 1.0
    Callback.objects.all().delete()
    callback(
        processed_at=SINCE + dt.timedelta(seconds=5), latency=dt.timedelta(microseconds=1_000_001)
    )
    latency = credit_latency(since=SINCE, until=UNTIL, now=NOW)
    assert dict(latency.buckets)[1] == 0
    assert dict(latency.buckets)[2] == 1
    assert latency.max_seconds == 1.000001
    assert latency.p50_seconds == 1.000001  # the 2 s bound, capped at the maximum


def test_slower_than_every_bucket_reports_the_maximum() -> None:
    two_days = 2 * 24 * 3600.0
    credited_in_window([two_days, two_days + 0.5])
    latency = credit_latency(since=SINCE, until=UNTIL, now=NOW)
    assert latency.buckets[-2][1] == 0  # none within 24 h
    assert latency.buckets[-1] == (math.inf, 2)
    assert latency.p50_seconds == latency.p99_seconds == latency.max_seconds == two_days + 0.5


def test_only_confirmations_posted_in_the_window_count() -> None:
    callback(processed_at=SINCE, latency=2.0)  # on the opening bound: in
    callback(processed_at=UNTIL - dt.timedelta(microseconds=1), latency=3.0)  # in
    callback(processed_at=UNTIL, latency=1.0)  # on the closing bound: out
    callback(processed_at=SINCE - dt.timedelta(microseconds=1), latency=1.0)  # before: out
    callback(processed_at=SINCE + dt.timedelta(minutes=1), latency=4.0, state="duplicate")
    callback(processed_at=SINCE + dt.timedelta(minutes=2), latency=5.0, state="unmatched")
    # Not credits: rejected, failed (stamped processed_at too), a B2C result, not yet posted.
    callback(processed_at=SINCE + dt.timedelta(minutes=3), latency=600.0, state="rejected")
    callback(processed_at=SINCE + dt.timedelta(minutes=4), latency=600.0, state="failed")
    callback(
        processed_at=SINCE + dt.timedelta(minutes=5), latency=600.0, kind=CallbackKind.B2C_RESULT
    )
    callback(processed_at=None, received_at=SINCE, state="received")
    latency = credit_latency(since=SINCE, until=UNTIL, now=NOW)
    assert latency.credited == 4
    assert latency.max_seconds == 5.0
    assert latency.p50_seconds == 5.0  # rank 2 of 4: 3.0 s, in the 5 s bucket


def test_nothing_credited_reports_none_not_zero() -> None:
    latency = credit_latency(since=SINCE, until=UNTIL, now=NOW)
    assert latency.credited == 0
    assert latency.p50_seconds is None
    assert latency.p99_seconds is None
    assert latency.max_seconds is None
    assert latency.buckets[-1] == (math.inf, 0)
    assert latency.backlog == 0
    assert latency.oldest_unposted_at is None
    assert latency.oldest_unposted_age_seconds is None


def test_a_negative_latency_from_a_clock_step_counts_as_zero() -> None:
    credited_in_window([-0.5])
    latency = credit_latency(since=SINCE, until=UNTIL, now=NOW)
    assert latency.credited == 1
    assert dict(latency.buckets)[0.05] == 1
    assert latency.max_seconds == 0.0
    assert latency.p50_seconds == 0.0


def test_backlog_counts_received_and_failed_confirmations_and_the_oldest_age() -> None:
    callback(processed_at=None, received_at=NOW - dt.timedelta(seconds=30), state="received")
    callback(processed_at=None, received_at=NOW - dt.timedelta(seconds=5), state="received")
    failed_at = NOW - dt.timedelta(minutes=10)
    callback(
        processed_at=failed_at + dt.timedelta(seconds=1), received_at=failed_at, state="failed"
    )
    # Not backlog: posted, rejected, an unposted B2C result.
    callback(processed_at=NOW, latency=1.0)
    callback(processed_at=NOW, latency=1.0, state="rejected")
    callback(
        processed_at=None, received_at=NOW - dt.timedelta(days=1), kind=CallbackKind.B2C_RESULT
    )
    with time_machine.travel(NOW, tick=False):
        latency = credit_latency(since=SINCE, until=UNTIL)  # now: the (pinned) clock
    assert latency.now == NOW
    assert latency.backlog == 3
    assert latency.backlog_failed == 1
    assert latency.oldest_unposted_at == failed_at
    assert latency.oldest_unposted_age_seconds == 600.0


def test_two_queries_whatever_the_volume(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    credited_in_window([0.1 * n for n in range(50)])
    with django_assert_num_queries(2):
        credit_latency(since=SINCE, until=UNTIL, now=NOW)


def test_the_microseconds_expression_is_exact_on_this_database() -> None:
    """The native per-database expression equals Python's difference, to the microsecond:
    whole seconds, across midnight and days, negative, microseconds zero or not."""
    rng = random.Random(15)
    pairs = [
        (SINCE, SINCE),
        (SINCE, SINCE + dt.timedelta(microseconds=1)),
        (SINCE + dt.timedelta(microseconds=999_999), SINCE + dt.timedelta(seconds=1)),
        (nairobi(2026, 3, 10, 23, 59), nairobi(2026, 3, 11, 0, 1)),
        (SINCE, SINCE + dt.timedelta(days=3, microseconds=7)),
        (SINCE + dt.timedelta(seconds=2), SINCE + dt.timedelta(microseconds=500_000)),
    ]
    for _ in range(40):
        start = SINCE + dt.timedelta(microseconds=rng.randrange(0, 10**11))
        pairs.append((start, start + dt.timedelta(microseconds=rng.randrange(-(10**7), 10**10))))
    ids = [
        callback(received_at=start, processed_at=end, state="processed").pk for start, end in pairs
    ]
    got = dict(
        Callback.objects.filter(pk__in=ids)
        .annotate(micros=MicrosecondsBetween("received_at", "processed_at"))
        .values_list("pk", "micros")
    )
    for pk, (start, end) in zip(ids, pairs, strict=True):
        expected = (end - start) // dt.timedelta(microseconds=1)
        assert got[pk] == expected, (connection.vendor, start, end)


@pytest.mark.parametrize(
    ("counts", "quantile", "maximum", "expected"),
    [
        ([], "0.5", None, None),
        ([(1.0, 0), (math.inf, 0)], "0.5", None, None),
        ([(1.0, 1), (math.inf, 1)], "0.5", 0.3, 0.3),  # capped at the maximum
        ([(1.0, 1), (math.inf, 1)], "1", 0.3, 0.3),
        ([(1.0, 2), (2.0, 3), (math.inf, 4)], "0.5", 9.0, 1.0),  # rank 2: the first bucket
        ([(1.0, 2), (2.0, 3), (math.inf, 4)], "0.51", 9.0, 2.0),  # rank 3
        ([(1.0, 2), (2.0, 3), (math.inf, 4)], "0.99", 9.0, 9.0),  # rank 4: overflow, the max
        ([(1.0, 0), (2.0, 0), (math.inf, 5)], "0.01", 100.0, 100.0),
    ],
)
def test_percentile_from_cumulative_buckets(
    counts: list[tuple[float, int]], quantile: str, maximum: float | None, expected: float | None
) -> None:
    assert latency_percentile(counts, quantile=Decimal(quantile), maximum=maximum) == expected


@pytest.mark.parametrize("quantile", ["0", "-0.1", "1.01"])
def test_a_quantile_outside_0_1_is_refused(quantile: str) -> None:
    with pytest.raises(ValueError, match="quantile"):
        latency_percentile([(math.inf, 1)], quantile=Decimal(quantile), maximum=1.0)


def test_the_window_query_reads_the_latency_index_on_sqlite() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the plan is checked on SQLite, whose planner needs no statistics")
    credited_in_window([1.0, 2.0])
    rows = (
        Callback.objects.filter(
            kind=CallbackKind.C2B_CONFIRMATION,
            state__in=["processed", "duplicate", "unmatched"],
            processed_at__gte=SINCE,
            processed_at__lt=UNTIL,
        )
        .order_by()
        .values("received_at", "processed_at")
    )
    plan = rows.explain()
    assert "COVERING INDEX mpesa_callback_latency_idx" in plan, plan
