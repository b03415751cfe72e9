"""The operator's morning: the figures of one business day, each with the admin list behind it
(filtered so that its count and sum equal the figure), and the charts' data.

Every figure is an aggregate query (or one of the ledger's own selectors), so the dashboard
costs a bounded number of queries whatever the size of the fleet, vehicles aside (their
status is `fleet.assignments.vehicle_status_now`, one rule in one place, one query each).
Money stays Decimal; the charts' JSON carries integers of cents (`*_cents`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlencode

from django.db.models import Aggregate, Count, Q, Sum
from django.urls import reverse
from django.utils import timezone

from tuktuk.backoffice.deposit_report import deposit_report
from tuktuk.backoffice.portal.models import ProblemState
from tuktuk.backoffice.portal.selectors import problem_reports_open_count
from tuktuk.core.money import ZERO, money
from tuktuk.fleet.assignments import vehicle_status_now
from tuktuk.fleet.models import Driver, FleetSettings, Vehicle, VehicleStatus
from tuktuk.ledger.business_day import day_close_moment, day_open_moment
from tuktuk.ledger.day_close import current_business_day
from tuktuk.ledger.models import (
    DayClose,
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from tuktuk.ledger.selectors import balance_snapshots
from tuktuk.mpesa.models import CallbackKind
from tuktuk.mpesa.selectors import CREDITED_STATES, UNPOSTED_STATES, CreditLatency, credit_latency
from tuktuk.payouts.models import Payout, PayoutKind, PayoutState

AT_RISK_MISSES = 2  # two consecutive misses: a third flags the driver for termination review
# A confirmation still not posted this long after it arrived needs a look (the posting engine
# credits within seconds; a failed posting is retried by the worker).
UNPOSTED_ALERT_SECONDS = 60
CHART_DAYS = 30
TOP_DRIVERS = 5

# The driver-share states as the dashboard groups them.
SHARE_GROUPS: dict[str, list[str]] = {
    "paid": [PayoutState.COMPLETED],
    "pending": [PayoutState.PENDING, PayoutState.SENDING, PayoutState.SUBMITTED],
    "held": [PayoutState.HELD],
    "unknown": [PayoutState.UNKNOWN],
}
NEEDS_OPERATOR = [PayoutState.UNKNOWN, PayoutState.FAILED]


def admin_list_url(name: str, **params: str) -> str:
    """The admin changelist `name` (e.g. "ledger_transaction") filtered by `params`."""
    url = reverse(f"admin:{name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def completed_payments_of(day: dt.date) -> Q:
    """Collections of a business day: completed fares (not adjustments, repayments or
    self-payments, not uncaptured ones)."""
    return Q(
        business_day=day,
        status=TransactionStatus.COMPLETED,
        transaction_type=TransactionType.PAYMENT,
    )


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    count: int
    amount: Decimal | None  # None: a count only
    url: str  # the admin list (or page) behind the figure; its count/sum equals the figure
    problem: bool = False  # shown as needing attention when count > 0
    headline: str = ""  # shown large in place of the count or amount; lines split by "\n"
    note: str = ""  # a line under it


@dataclass(frozen=True)
class DriverTarget:
    driver_id: str
    name: str
    progress: Decimal  # the day's ledger sum (closed: the closing balance)
    target: Decimal
    met: bool
    consecutive_misses: int  # misses before this day
    closed: bool

    @property
    def at_risk(self) -> bool:
        return not self.met and self.consecutive_misses >= AT_RISK_MISSES


@dataclass(frozen=True)
class DayTargets:
    drivers: list[DriverTarget]

    @property
    def at_target(self) -> list[DriverTarget]:
        return [d for d in self.drivers if d.met]

    @property
    def below_target(self) -> list[DriverTarget]:
        return [d for d in self.drivers if not d.met]

    @property
    def at_risk(self) -> list[DriverTarget]:
        return [d for d in self.drivers if d.at_risk]

    @property
    def achievement_rate(self) -> Decimal:
        """Percent of drivers at target, one decimal (0 when no driver counts)."""
        if not self.drivers:
            return Decimal("0.0")
        rate = Decimal(len(self.at_target) * 100) / Decimal(len(self.drivers))
        return rate.quantize(Decimal("0.1"))


@dataclass(frozen=True)
class VehicleCounts:
    active: list[str]
    available: list[str]
    charging: list[str]
    by_status: dict[str, int]


@dataclass(frozen=True)
class ChartPoint:
    label: str
    value: int | str  # cents (int) or a percentage with one decimal (str)


@dataclass(frozen=True)
class Charts:
    revenue_cents: list[ChartPoint]  # the last 30 business days, ending with the day
    achievement_percent: list[ChartPoint]
    hourly_cents: list[ChartPoint]  # collections by local hour within the day
    hourly_counts: list[ChartPoint]
    top_drivers_cents: list[ChartPoint]
    bottom_drivers_cents: list[ChartPoint]

    def as_dict(self) -> dict[str, dict[str, list[int | str]]]:
        def series(points: list[ChartPoint]) -> dict[str, list[int | str]]:
            return {"labels": [p.label for p in points], "values": [p.value for p in points]}

        return {
            "revenue_cents": series(self.revenue_cents),
            "achievement_percent": series(self.achievement_percent),
            "hourly_cents": series(self.hourly_cents),
            "hourly_counts": series(self.hourly_counts),
            "top_drivers_cents": series(self.top_drivers_cents),
            "bottom_drivers_cents": series(self.bottom_drivers_cents),
        }


@dataclass(frozen=True)
class Dashboard:
    day: dt.date
    today: dt.date
    figures: list[Figure]
    targets: DayTargets
    vehicles: VehicleCounts
    charts: Charts | None = None
    discrepancy_drivers: list[str] = field(default_factory=list)
    discrepancy_driver_pks: list[int] = field(default_factory=list)
    latency: CreditLatency | None = None

    def figure(self, key: str) -> Figure:
        return next(f for f in self.figures if f.key == key)


def cents(amount: Decimal) -> int:
    return int(money(amount) * 100)


def _drivers_link(driver_ids: list[str]) -> str:
    # status=all: the driver list hides archived drivers unless asked; the ids decide.
    return admin_list_url("fleet_driver", status="all", driver_id__in=",".join(driver_ids))


def day_targets(*, day: dt.date, fleet: FleetSettings | None = None) -> DayTargets:
    """Each driver's standing on `day`: a closed day from its DayClose row (paused days count
    for nobody), an open one from the day's ledger sum against the effective target. Active
    drivers and those closed on the day; three queries."""
    fleet = fleet or FleetSettings.load()
    closes = {
        close.driver_id: close
        for close in DayClose.objects.filter(business_day=day, paused=False).select_related(
            "driver"
        )
    }
    paused = set(
        DayClose.objects.filter(business_day=day, paused=True).values_list("driver_id", flat=True)
    )
    sums = dict(
        LedgerEntry.objects.filter(business_day=day)
        .order_by()
        .values("driver_id")
        .annotate(total=Sum("amount"))
        .values_list("driver_id", "total")
    )
    rows: list[DriverTarget] = []
    for close in closes.values():
        misses_before = close.consecutive_misses - (0 if close.target_met else 1)
        rows.append(
            DriverTarget(
                driver_id=close.driver.driver_id,
                name=close.driver.name,
                progress=money(close.closing_balance),
                target=money(close.target),
                met=close.target_met,
                consecutive_misses=max(0, misses_before),
                closed=True,
            )
        )
    open_drivers = Driver.objects.filter(is_active=True).exclude(pk__in=[*closes, *paused])
    for driver in open_drivers.order_by("driver_id"):
        if driver.balance_day is None or driver.balance_day > day:
            # No balance kept yet (never paid, never seen by a close: the close records no day
            # for them either), or the day is behind this driver and was never recorded.
            continue
        target = money(driver.effective_target(fleet))
        progress = money(sums.get(driver.pk) or ZERO)
        rows.append(
            DriverTarget(
                driver_id=driver.driver_id,
                name=driver.name,
                progress=progress,
                target=target,
                met=progress >= target,
                consecutive_misses=driver.consecutive_misses,
                closed=False,
            )
        )
    rows.sort(key=lambda row: row.driver_id)
    return DayTargets(drivers=rows)


def duration_text(seconds: float) -> str:
    """A latency in words: "0.25 s", "7.3 s", "4 min 10 s", "2 h 5 min"."""
    if seconds < 1:
        return f"{seconds:.2f}".rstrip("0").rstrip(".") + " s"
    if seconds < 60:
        return f"{seconds:.1f}".removesuffix(".0") + " s"
    whole = round(seconds)
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole // 60, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def latency_figures(*, day: dt.date, fleet: FleetSettings) -> tuple[CreditLatency, list[Figure]]:
    """Credit latency of the confirmations posted during business day `day` (p50 / p99 as
    their bucket's upper bound, the maximum exact: mpesa.selectors.credit_latency), and the
    confirmations waiting to be posted now, each linked to its callbacks list."""
    since = timezone.localtime(day_open_moment(day, fleet=fleet))
    until = timezone.localtime(day_close_moment(day, fleet=fleet))
    latency = credit_latency(since=since, until=until)
    if latency.credited and latency.p50_seconds is not None and latency.p99_seconds is not None:
        headline = (
            f"p50 ≤ {duration_text(latency.p50_seconds)}\n"
            f"p99 ≤ {duration_text(latency.p99_seconds)}"
        )
        note = f"max {duration_text(latency.max_seconds or 0.0)} · {latency.credited} credited"
    else:
        headline, note = "none", "0 credited"
    credited = Figure(
        "credited",
        "Credit latency (webhook to balance)",
        latency.credited,
        None,
        admin_list_url(
            "mpesa_callback",
            kind__exact=CallbackKind.C2B_CONFIRMATION,
            state__in=",".join(CREDITED_STATES),
            processed_at__gte=since.isoformat(),
            processed_at__lt=until.isoformat(),
        ),
        headline=headline,
        note=note,
    )
    age = latency.oldest_unposted_age_seconds
    waiting = "none waiting" if age is None else f"oldest {duration_text(age)} ago"
    if latency.backlog_failed:
        waiting += f" · {latency.backlog_failed} failed, to retry"
    unposted = Figure(
        "unposted",
        "Confirmations waiting to post (now)",
        latency.backlog,
        None,
        admin_list_url(
            "mpesa_callback",
            kind__exact=CallbackKind.C2B_CONFIRMATION,
            state__in=",".join(UNPOSTED_STATES),
        ),
        problem=bool(latency.backlog_failed) or (age or 0.0) > UNPOSTED_ALERT_SECONDS,
        note=waiting,
    )
    return latency, [credited, unposted]


def vehicle_counts(*, at: dt.datetime | None = None) -> VehicleCounts:
    """Active vehicles and their legacy status now (or at `at`)."""
    by_status: dict[str, list[str]] = defaultdict(list)
    active = []
    for vehicle in Vehicle.objects.filter(is_active=True).order_by("vehicle_id"):
        active.append(vehicle.vehicle_id)
        if at is not None:
            vehicle.status = _operator_status_at(vehicle, at)  # in memory only, never saved
        by_status[vehicle_status_now(vehicle=vehicle, at=at)].append(vehicle.vehicle_id)
    return VehicleCounts(
        active=active,
        available=by_status.get(VehicleStatus.AVAILABLE, []),
        charging=by_status.get(VehicleStatus.CHARGING, []),
        by_status={status: len(ids) for status, ids in sorted(by_status.items())},
    )


def _operator_status_at(vehicle: Vehicle, at: dt.datetime) -> str:
    """The operator-set status a vehicle had at `at`, from its status history."""
    before = vehicle.status_changes.filter(changed_at__lte=at).order_by("-changed_at", "-id")
    last = before.values_list("new_status", flat=True).first()
    if last is not None:
        return last
    after = vehicle.status_changes.filter(changed_at__gt=at).order_by("changed_at", "id")
    first = after.values_list("old_status", flat=True).first()
    return first if first is not None else vehicle.status


def _vehicles_link(vehicle_ids: list[str]) -> str:
    return admin_list_url("fleet_vehicle", vehicle_id__in=",".join(vehicle_ids))


def dashboard_charts(*, day: dt.date, targets: DayTargets, fleet: FleetSettings) -> Charts:
    first = day - dt.timedelta(days=CHART_DAYS - 1)
    days = [first + dt.timedelta(days=i) for i in range(CHART_DAYS)]
    revenue = dict(
        Transaction.objects.filter(
            business_day__gte=first,
            business_day__lte=day,
            status=TransactionStatus.COMPLETED,
            transaction_type=TransactionType.PAYMENT,
        )
        .order_by()
        .values("business_day")
        .annotate(total=Sum("amount"))
        .values_list("business_day", "total")
    )
    achievement = {
        row["business_day"]: (row["met"], row["n"])
        for row in DayClose.objects.filter(
            business_day__gte=first, business_day__lte=day, paused=False
        )
        .order_by()
        .values("business_day")
        .annotate(n=Count("id"), met=Count("id", filter=Q(target_met=True)))
    }
    rates = []
    for d in days:
        if d == day:
            rate = targets.achievement_rate
        else:
            met, n = achievement.get(d, (0, 0))
            rate = (Decimal(met * 100) / n).quantize(Decimal("0.1")) if n else Decimal("0.0")
        rates.append(ChartPoint(d.isoformat(), str(rate)))

    # Collections by local hour of the business day: one aggregate with a bucket per hour.
    start = timezone.localtime(day_open_moment(day, fleet=fleet))
    end = timezone.localtime(day_close_moment(day, fleet=fleet))
    bounds = []
    moment = start
    while moment < end:
        following = min(end, moment + dt.timedelta(hours=1))
        bounds.append((moment, following))
        moment = following
    base = Transaction.objects.filter(completed_payments_of(day))
    aggregates: dict[str, Aggregate] = {}
    for i, (lo, hi) in enumerate(bounds):
        window = Q(received_at__gte=lo, received_at__lt=hi)
        aggregates[f"s{i}"] = Sum("amount", filter=window)
        aggregates[f"n{i}"] = Count("id", filter=window)
    hourly = base.aggregate(**aggregates) if aggregates else {}
    hourly_cents = [
        ChartPoint(f"{lo:%H}:00", cents(hourly.get(f"s{i}") or ZERO))
        for i, (lo, _hi) in enumerate(bounds)
    ]
    hourly_counts = [
        ChartPoint(f"{lo:%H}:00", int(hourly.get(f"n{i}") or 0))
        for i, (lo, _hi) in enumerate(bounds)
    ]

    per_driver = dict(
        base.order_by()
        .values("driver__driver_id")
        .annotate(total=Sum("amount"))
        .values_list("driver__driver_id", "total")
    )
    standing = {row.driver_id for row in targets.drivers} | set(per_driver)
    ranked = sorted(
        ((driver_id, money(per_driver.get(driver_id) or ZERO)) for driver_id in standing),
        key=lambda pair: (-pair[1], pair[0]),
    )
    top = ranked[:TOP_DRIVERS]
    bottom = sorted(ranked, key=lambda pair: (pair[1], pair[0]))[:TOP_DRIVERS]
    return Charts(
        revenue_cents=[ChartPoint(d.isoformat(), cents(revenue.get(d) or ZERO)) for d in days],
        achievement_percent=rates,
        hourly_cents=hourly_cents,
        hourly_counts=hourly_counts,
        top_drivers_cents=[ChartPoint(d, cents(a)) for d, a in top],
        bottom_drivers_cents=[ChartPoint(d, cents(a)) for d, a in bottom],
    )


def dashboard_build(*, day: dt.date | None = None, charts: bool = True) -> Dashboard:
    """The figures of business day `day` (default: today's)."""
    fleet = FleetSettings.load()
    today = current_business_day(fleet)
    day = day or today
    iso = day.isoformat()
    figures: list[Figure] = []

    collected = Transaction.objects.filter(completed_payments_of(day)).aggregate(
        n=Count("id"), total=Sum("amount")
    )
    figures.append(
        Figure(
            "collections",
            "Collections",
            collected["n"],
            money(collected["total"] or ZERO),
            admin_list_url(
                "ledger_transaction",
                business_day=iso,
                status__exact=TransactionStatus.COMPLETED,
                transaction_type__exact=TransactionType.PAYMENT,
            ),
        )
    )

    shares = {
        row["state"]: (row["n"], money(row["total"] or ZERO))
        for row in Payout.objects.filter(kind=PayoutKind.SHARE, transaction__business_day=day)
        .order_by()
        .values("state")
        .annotate(n=Count("id"), total=Sum("amount"))
    }
    for group, states in SHARE_GROUPS.items():
        n = sum(shares.get(s, (0, ZERO))[0] for s in states)
        total = sum((shares.get(s, (0, ZERO))[1] for s in states), ZERO)
        figures.append(
            Figure(
                f"shares_{group}",
                f"Driver shares {group}",
                n,
                total,
                admin_list_url(
                    "payouts_payout",
                    kind__exact=PayoutKind.SHARE,
                    transaction__business_day=iso,
                    state__in=",".join(states),
                ),
                problem=group == "unknown",
            )
        )

    contributed = LedgerEntry.objects.filter(
        business_day=day, kind=EntryKind.CONTRIBUTION
    ).aggregate(n=Count("id"), total=Sum("amount"))
    figures.append(
        Figure(
            "contributions",
            "Target contributions",
            contributed["n"],
            money(contributed["total"] or ZERO),
            admin_list_url(
                "ledger_ledgerentry", business_day=iso, kind__exact=EntryKind.CONTRIBUTION
            ),
        )
    )

    targets = day_targets(day=day, fleet=fleet)
    for key, label, rows in (
        ("at_target", "Drivers at target", targets.at_target),
        ("below_target", "Drivers below target", targets.below_target),
        ("at_risk", "Drivers at risk (2 misses in a row)", targets.at_risk),
    ):
        figures.append(
            Figure(
                key,
                label,
                len(rows),
                None,
                _drivers_link([row.driver_id for row in rows]),
                problem=key == "at_risk",
            )
        )

    # Real problems only: a balance that differs from its ledger or a payment without (or
    # with a differing) contribution; harmless redeliveries are information, not problems.
    needing_fix = [s for s in balance_snapshots() if s.needs_fix]
    broken = [s.driver_id for s in needing_fix]
    figures.append(
        Figure(
            "discrepancies",
            "Open discrepancies",
            len(broken),
            None,
            _drivers_link(broken),
            problem=True,
        )
    )

    waiting = Transaction.objects.filter(status=TransactionStatus.UNMATCHED).aggregate(
        n=Count("id"), total=Sum("amount")
    )
    figures.append(
        Figure(
            "uncaptured",
            "Uncaptured payments waiting",
            waiting["n"],
            money(waiting["total"] or ZERO),
            admin_list_url("ledger_uncapturedpayment", status__exact=TransactionStatus.UNMATCHED),
            problem=True,
        )
    )

    # A driver's "report a problem" from the portal: open until an operator resolves it.
    figures.append(
        Figure(
            "driver_problems",
            "Problems reported by drivers",
            problem_reports_open_count(),
            None,
            admin_list_url("portal_problemreport", state=ProblemState.OPEN),
            problem=True,
        )
    )

    stuck = Payout.objects.filter(state__in=NEEDS_OPERATOR).aggregate(
        n=Count("id"), total=Sum("amount")
    )
    figures.append(
        Figure(
            "payouts_needing_operator",
            "Payouts needing an operator (unknown, failed)",
            stuck["n"],
            money(stuck["total"] or ZERO),
            admin_list_url("payouts_payout", state__in=",".join(NEEDS_OPERATOR)),
            problem=True,
        )
    )

    deposits = deposit_report()
    holding = [row for row in deposits.rows if row.balance > 0]
    figures.append(
        Figure(
            "deposits_held",
            "Deposits held",
            len(holding),
            money(deposits.totals["balance"]),
            reverse("admin:ledger_depositaccount_report"),
        )
    )

    latency, inbox = latency_figures(day=day, fleet=fleet)
    figures.extend(inbox)

    vehicles = vehicle_counts()
    for key, label, ids in (
        ("vehicles_active", "Vehicles active", vehicles.active),
        ("vehicles_available", "Vehicles available", vehicles.available),
        ("vehicles_charging", "Vehicles charging", vehicles.charging),
    ):
        figures.append(Figure(key, label, len(ids), None, _vehicles_link(ids)))

    return Dashboard(
        day=day,
        today=today,
        figures=figures,
        targets=targets,
        vehicles=vehicles,
        charts=dashboard_charts(day=day, targets=targets, fleet=fleet) if charts else None,
        discrepancy_drivers=broken,
        discrepancy_driver_pks=[s.driver_pk for s in needing_fix],
        latency=latency,
    )
