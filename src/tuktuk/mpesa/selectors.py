"""Reads on the callback inbox.

Duplicates report
-----------------
A TransID is a duplicate when more than one C2B confirmation callback carrying it is stored. It is
reported in the range of business days in which its first delivery was received (so a TransID
redelivered after midnight appears once, in one report, not split across two), with every
delivery: its time, state (processed / duplicate / failed / ...) and the driver of the
transaction if known. Default range: the last 7 business days up to the current one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    F,
    Func,
    IntegerField,
    Max,
    Min,
    Value,
    When,
)
from django.db.models.lookups import LessThanOrEqual
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from tuktuk.core.dates import day_parse
from tuktuk.core.money import money
from tuktuk.fleet.models import FleetSettings
from tuktuk.ledger.business_day import day_close_moment, day_open_moment
from tuktuk.ledger.day_close import current_business_day
from tuktuk.ledger.models import Transaction
from tuktuk.ledger.statement import day_range_check
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState

DUPLICATES_DEFAULT_DAYS = 7


@dataclass(frozen=True)
class Delivery:
    callback_id: int
    received_at: dt.datetime
    state: str
    error: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DuplicateTransId:
    trans_id: str
    deliveries: list[Delivery]
    driver_id: str | None = None
    driver_name: str | None = None
    amount: Decimal | None = None

    @property
    def count(self) -> int:
        return len(self.deliveries)

    @property
    def processed(self) -> int:
        """Deliveries that credited money: more than one would be a double credit."""
        return sum(1 for d in self.deliveries if d.state == CallbackState.PROCESSED)

    def as_dict(self) -> dict[str, Any]:
        return {
            "trans_id": self.trans_id,
            "count": self.count,
            "processed": self.processed,
            "driver_id": self.driver_id,
            "driver_name": self.driver_name,
            "amount": self.amount,
            "first_received_at": self.deliveries[0].received_at,
            "last_received_at": self.deliveries[-1].received_at,
            "deliveries": [d.as_dict() for d in self.deliveries],
        }


@dataclass(frozen=True)
class DuplicatesReport:
    date_from: dt.date
    date_to: dt.date
    since: dt.datetime
    until: dt.datetime
    duplicates: list[DuplicateTransId]

    @property
    def deliveries(self) -> int:
        return sum(d.count for d in self.duplicates)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.date_from,
            "to": self.date_to,
            "since": self.since,
            "until": self.until,
            "trans_ids": len(self.duplicates),
            "deliveries": self.deliveries,
            "duplicates": [d.as_dict() for d in self.duplicates],
        }


def duplicates_report(
    *, date_from: dt.date | str | None = None, date_to: dt.date | str | None = None
) -> DuplicatesReport:
    """TransIDs with more than one stored C2B confirmation, first delivered in business days
    date_from..date_to (see the module docstring). Two or three queries, never one per TransID."""
    first = day_parse(date_from, name="from")
    last = day_parse(date_to, name="to")
    if first is not None and last is not None:
        day_range_check(first, last)
    fleet = FleetSettings.load()
    last = last or current_business_day(fleet)
    first = first or last - dt.timedelta(days=DUPLICATES_DEFAULT_DAYS - 1)
    day_range_check(first, last)
    since = day_open_moment(first, fleet=fleet)
    until = day_close_moment(last, fleet=fleet)

    confirmations = Callback.objects.filter(kind=CallbackKind.C2B_CONFIRMATION).exclude(trans_id="")
    # Only TransIDs delivered in the range are grouped (the trans_id index narrows it), then
    # all their deliveries count, wherever they fall.
    seen = confirmations.filter(received_at__gte=since, received_at__lt=until).values("trans_id")
    repeated = (
        confirmations.filter(trans_id__in=seen)
        .values("trans_id")
        .annotate(n=Count("id"), first=Min("received_at"))
        .filter(n__gt=1, first__gte=since, first__lt=until)
        .order_by()
        .values("trans_id")
    )
    by_trans_id: dict[str, DuplicateTransId] = {}
    for row in (
        confirmations.filter(trans_id__in=repeated)
        .order_by("received_at", "pk")
        .values(
            "pk",
            "trans_id",
            "received_at",
            "state",
            "error",
            "transaction__amount",
            "transaction__driver__driver_id",
            "transaction__driver__name",
        )
    ):
        duplicate = by_trans_id.setdefault(
            row["trans_id"], DuplicateTransId(trans_id=row["trans_id"], deliveries=[])
        )
        duplicate.deliveries.append(
            Delivery(
                callback_id=row["pk"],
                received_at=timezone.localtime(row["received_at"]),
                state=row["state"],
                error=row["error"],
            )
        )
        if duplicate.driver_id is None and row["transaction__driver__driver_id"]:
            duplicate.driver_id = row["transaction__driver__driver_id"]
            duplicate.driver_name = row["transaction__driver__name"]
        if duplicate.amount is None and row["transaction__amount"] is not None:
            duplicate.amount = money(row["transaction__amount"])
    # Deliveries that failed before posting carry no transaction link: look those up once.
    unlinked = [d.trans_id for d in by_trans_id.values() if d.driver_id is None]
    if unlinked:
        for tx in Transaction.objects.filter(trans_id__in=unlinked).values(
            "trans_id", "amount", "driver__driver_id", "driver__name"
        ):
            duplicate = by_trans_id[tx["trans_id"]]
            duplicate.driver_id = tx["driver__driver_id"]
            duplicate.driver_name = tx["driver__name"]
            duplicate.amount = money(tx["amount"])
    return DuplicatesReport(
        date_from=first,
        date_to=last,
        since=timezone.localtime(since),
        until=timezone.localtime(until),
        duplicates=list(by_trans_id.values()),
    )


# Credit latency
# --------------
# From a C2B confirmation's arrival (`received_at`, when it was stored) to the balance
# including it (`processed_at`, when it was posted: processed, duplicate or unmatched).
#
# Why buckets rather than the databases' percentile functions: PostgreSQL's percentile_cont
# sorts every row of the window, MariaDB's PERCENTILE_CONT is a window function over every row
# and SQLite has none. One CASE expression puts each row of the window in a fixed bucket and
# the database returns a count per bucket (a few rows, whatever the volume); the percentiles
# come from the cumulative counts. The same code and the same answer on the three databases,
# constant memory, one index range scan (the covering index on kind, state, processed_at,
# received_at: no table row is read). The price: a percentile is known only to its bucket's
# upper bound (the maximum is exact).

# Upper bounds, in seconds, of the latency buckets; a last, open-ended bucket holds the rest.
CREDIT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    6 * 3600,
    24 * 3600,
)
CREDITED_STATES = (CallbackState.PROCESSED, CallbackState.DUPLICATE, CallbackState.UNMATCHED)
UNPOSTED_STATES = (CallbackState.RECEIVED, CallbackState.FAILED)
_MICROSECONDS = 1_000_000
_SQL = tuple[str, tuple[Any, ...]]


class MicrosecondsBetween(Func):
    """`end - start` (two datetime columns) in whole microseconds, a native integer expression
    on each database: Django's own datetime subtraction is a Python function per row on
    SQLite (`django_timestamp_diff`), too slow for a day of a million rows."""

    arity = 2
    output_field = BigIntegerField()

    def __init__(self, start: str, end: str) -> None:
        super().__init__(F(start), F(end))

    def _parts(self, compiler: SQLCompiler) -> tuple[str, list[Any], str, list[Any]]:
        start, end = self.get_source_expressions()
        start_sql, start_params = compiler.compile(start)
        end_sql, end_params = compiler.compile(end)
        return start_sql, list(start_params), end_sql, list(end_params)

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> _SQL:
        raise NotImplementedError(f"MicrosecondsBetween: no SQL for {connection.vendor}")

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> _SQL:
        # date_part gives a double (EXTRACT's numeric is several times slower per row); a
        # double holds seconds to well under a microsecond for any latency below 100 years,
        # and the cast rounds to the nearest whole microsecond.
        start, start_params, end, end_params = self._parts(compiler)
        sql = f"CAST(date_part('epoch', {end} - {start}) * 1000000 AS BIGINT)"
        return sql, (*end_params, *start_params)

    def as_mysql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> _SQL:
        start, start_params, end, end_params = self._parts(compiler)
        return f"TIMESTAMPDIFF(MICROSECOND, {start}, {end})", (*start_params, *end_params)

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> _SQL:
        # Django stores a datetime on SQLite as str(naive UTC datetime): "YYYY-MM-DD HH:MM:SS"
        # then ".ffffff" when the microseconds are not zero (characters 21 to 26; an empty
        # substring casts to 0). Whole seconds from strftime over the first 19 characters only
        # (SQLite rounds its own times to milliseconds: "…:00.999999" would read as :01).
        start, start_params, end, end_params = self._parts(compiler)
        sql = (
            f"((CAST(strftime(%s, substr({end}, 1, 19)) AS INTEGER)"
            f" - CAST(strftime(%s, substr({start}, 1, 19)) AS INTEGER))"
            f" * 1000000 + CAST(substr({end}, 21) AS INTEGER)"
            f" - CAST(substr({start}, 21) AS INTEGER))"
        )
        return sql, ("%s", *end_params, "%s", *start_params, *end_params, *start_params)


@dataclass(frozen=True)
class CreditLatency:
    """Credit latency of the C2B confirmations posted in [since, until), and the backlog now.

    Percentiles are reported as the upper bound of the bucket they fall in (capped at the exact
    maximum, which no percentile exceeds): "p99 = 5.0" means 99% were credited within 5 s.
    Seconds are floats; None when nothing was credited in the window."""

    since: dt.datetime
    until: dt.datetime
    now: dt.datetime
    credited: int
    p50_seconds: float | None
    p99_seconds: float | None
    max_seconds: float | None
    # (upper bound in seconds, credited within it), cumulative, the last bound is +inf.
    buckets: tuple[tuple[float, int], ...]
    backlog: int  # C2B confirmations stored and not yet posted (received or failed)
    backlog_failed: int  # of which posting failed (retried by the worker)
    oldest_unposted_at: dt.datetime | None
    oldest_unposted_age_seconds: float | None  # now - its received_at; None with no backlog


def latency_percentile(
    cumulative: Sequence[tuple[float, int]], *, quantile: Decimal, maximum: float | None
) -> float | None:
    """The nearest-rank `quantile` (0 < q <= 1) of cumulative bucket counts: the upper bound
    of the first bucket holding ceil(q * n) rows, capped at the exact maximum."""
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile out of (0, 1]: {quantile}")
    total = cumulative[-1][1] if cumulative else 0
    if total == 0 or maximum is None:
        return None
    rank = math.ceil(quantile * total)
    for bound, count in cumulative:
        if count >= rank:
            return min(bound, maximum)
    return maximum  # unreachable: the last bucket holds every row


def age_seconds(moment: dt.datetime, *, now: dt.datetime) -> float:
    return max(0.0, (now - moment).total_seconds())


def credit_latency(
    *, since: dt.datetime, until: dt.datetime, now: dt.datetime | None = None
) -> CreditLatency:
    """Credit latency (received_at to processed_at) of the C2B confirmations credited, i.e.
    whose processed_at falls in [since, until), and the current backlog. Two queries, each
    returning a handful of rows whatever the volume (see the comment above)."""
    now = now or timezone.now()
    latency = MicrosecondsBetween("received_at", "processed_at")
    bounds = [round(bound * _MICROSECONDS) for bound in CREDIT_LATENCY_BUCKETS]
    bucket = Case(
        *[
            When(LessThanOrEqual(latency, Value(bound)), then=Value(index))
            for index, bound in enumerate(bounds)
        ],
        default=Value(len(bounds)),
        output_field=IntegerField(),
    )
    rows = (
        Callback.objects.filter(
            kind=CallbackKind.C2B_CONFIRMATION,
            state__in=CREDITED_STATES,
            processed_at__gte=since,
            processed_at__lt=until,
        )
        .order_by()
        .annotate(bucket=bucket)
        .values("bucket")
        .annotate(n=Count("pk"), longest=Max(latency))
    )
    counts = [0] * (len(bounds) + 1)
    longest: int | None = None
    for row in rows:
        counts[row["bucket"]] += row["n"]
        longest = row["longest"] if longest is None else max(longest, row["longest"])
    cumulative: list[tuple[float, int]] = []
    running = 0
    for bound, n in zip([*CREDIT_LATENCY_BUCKETS, math.inf], counts, strict=True):
        running += n
        cumulative.append((float(bound), running))
    # A clock step between two web servers could make a latency negative: report it as 0.
    maximum = max(0, longest) / _MICROSECONDS if longest is not None else None

    unposted = {
        row["state"]: (row["n"], row["oldest"])
        for row in Callback.objects.filter(
            kind=CallbackKind.C2B_CONFIRMATION, state__in=UNPOSTED_STATES
        )
        .order_by()
        .values("state")
        .annotate(n=Count("pk"), oldest=Min("received_at"))
    }
    oldest = min((at for _n, at in unposted.values() if at is not None), default=None)
    return CreditLatency(
        since=since,
        until=until,
        now=now,
        credited=running,
        p50_seconds=latency_percentile(cumulative, quantile=Decimal("0.5"), maximum=maximum),
        p99_seconds=latency_percentile(cumulative, quantile=Decimal("0.99"), maximum=maximum),
        max_seconds=maximum,
        buckets=tuple(cumulative),
        backlog=sum(n for n, _at in unposted.values()),
        backlog_failed=unposted.get(CallbackState.FAILED, (0, None))[0],
        oldest_unposted_at=oldest,
        oldest_unposted_age_seconds=None if oldest is None else age_seconds(oldest, now=now),
    )
