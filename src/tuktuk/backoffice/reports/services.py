"""The daily and weekly reports: built from the ledger (closed days only, so building one again
gives the same numbers), stored once per period by the worker after the period's last day has
closed, emailed to the alert recipients, and downloadable as CSV.

Amounts are Decimal here and strings with two decimals in the stored data, never floats.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from tuktuk.backoffice.alerts import alert_recipients
from tuktuk.backoffice.dashboard import completed_payments_of, day_targets, vehicle_counts
from tuktuk.backoffice.reports.models import ReportKind, StoredReport
from tuktuk.core.errors import InvalidInput
from tuktuk.core.money import ZERO, format_ksh, money
from tuktuk.fleet.models import FleetSettings
from tuktuk.ledger.business_day import day_close_moment
from tuktuk.ledger.day_close import current_business_day, days_due
from tuktuk.ledger.models import (
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionStatus,
    TransactionType,
)

logger = logging.getLogger(__name__)


def _text(amount: Decimal) -> str:
    return format(money(amount), "f")


@dataclass(frozen=True)
class DailyReport:
    """The legacy daily report's fields, for one closed business day."""

    day: dt.date
    revenue: Decimal
    driver_share: Decimal
    target_contribution: Decimal
    transactions: int
    drivers_counted: int
    drivers_at_target: int
    achievement_rate: Decimal  # percent, one decimal
    drivers_below_target: list[str]  # "DRV-… Name"
    drivers_at_risk: list[str]
    vehicles_active: int
    vehicles_available: int
    vehicles_charging: int

    def as_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["day"] = self.day.isoformat()
        for key in ("revenue", "driver_share", "target_contribution"):
            data[key] = _text(data[key])
        data["achievement_rate"] = str(self.achievement_rate)
        return data


@dataclass(frozen=True)
class WeeklyReport:
    """Daily target contributions per driver over seven business days."""

    start: dt.date
    end: dt.date
    days: list[dt.date]
    rows: list[tuple[str, str, list[Decimal]]]  # driver id, name, one amount per day
    revenue_per_day: list[Decimal]

    def as_data(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": [d.isoformat() for d in self.days],
            "rows": [
                {"driver_id": d, "name": n, "contributions": [_text(a) for a in amounts]}
                for d, n, amounts in self.rows
            ],
            "revenue_per_day": [_text(a) for a in self.revenue_per_day],
        }


def _closed_or_refuse(last_day: dt.date, fleet: FleetSettings) -> None:
    if last_day >= current_business_day(fleet):
        raise InvalidInput(f"{last_day} is not closed yet; reports cover closed days only")


def daily_report_build(*, day: dt.date) -> DailyReport:
    fleet = FleetSettings.load()
    _closed_or_refuse(day, fleet)
    sums = Transaction.objects.filter(completed_payments_of(day)).aggregate(
        n=Count("id"), revenue=Sum("amount"), share=Sum("driver_share")
    )
    contributed = LedgerEntry.objects.filter(
        business_day=day, kind=EntryKind.CONTRIBUTION
    ).aggregate(total=Sum("amount"))
    targets = day_targets(day=day, fleet=fleet)
    # The vehicles as they stood at the day's close, so a report built again agrees.
    vehicles = vehicle_counts(at=day_close_moment(day, fleet=fleet))
    return DailyReport(
        day=day,
        revenue=money(sums["revenue"] or ZERO),
        driver_share=money(sums["share"] or ZERO),
        target_contribution=money(contributed["total"] or ZERO),
        transactions=sums["n"],
        drivers_counted=len(targets.drivers),
        drivers_at_target=len(targets.at_target),
        achievement_rate=targets.achievement_rate,
        drivers_below_target=[f"{d.driver_id} {d.name}" for d in targets.below_target],
        drivers_at_risk=[f"{d.driver_id} {d.name}" for d in targets.at_risk],
        vehicles_active=len(vehicles.active),
        vehicles_available=len(vehicles.available),
        vehicles_charging=len(vehicles.charging),
    )


def week_start_of(day: dt.date) -> dt.date:
    """Weeks run Monday to Sunday."""
    return day - dt.timedelta(days=day.weekday())


def weekly_report_build(*, start: dt.date) -> WeeklyReport:
    if start.weekday() != 0:
        raise InvalidInput(f"{start} is not a Monday; weeks run Monday to Sunday")
    fleet = FleetSettings.load()
    days = [start + dt.timedelta(days=i) for i in range(7)]
    _closed_or_refuse(days[-1], fleet)
    per_driver: dict[tuple[str, str], dict[dt.date, Decimal]] = {}
    for row in (
        LedgerEntry.objects.filter(
            business_day__gte=days[0], business_day__lte=days[-1], kind=EntryKind.CONTRIBUTION
        )
        .order_by()
        .values("driver__driver_id", "driver__name", "business_day")
        .annotate(total=Sum("amount"))
    ):
        key = (row["driver__driver_id"], row["driver__name"])
        per_driver.setdefault(key, {})[row["business_day"]] = money(row["total"] or ZERO)
    revenue = dict(
        Transaction.objects.filter(
            business_day__gte=days[0],
            business_day__lte=days[-1],
            status=TransactionStatus.COMPLETED,
            transaction_type=TransactionType.PAYMENT,
        )
        .order_by()
        .values("business_day")
        .annotate(total=Sum("amount"))
        .values_list("business_day", "total")
    )
    return WeeklyReport(
        start=days[0],
        end=days[-1],
        days=days,
        rows=[
            (driver_id, name, [amounts.get(d, ZERO) for d in days])
            for (driver_id, name), amounts in sorted(per_driver.items())
        ],
        revenue_per_day=[money(revenue.get(d) or ZERO) for d in days],
    )


def report_data_build(*, kind: str, start: dt.date) -> tuple[dt.date, dict[str, Any]]:
    """(period end, data) of the report of `kind` starting on `start`."""
    if kind == ReportKind.DAILY:
        return start, daily_report_build(day=start).as_data()
    if kind == ReportKind.WEEKLY:
        weekly = weekly_report_build(start=start)
        return weekly.end, weekly.as_data()
    raise InvalidInput(f"no report kind {kind!r}")


def report_store(*, kind: str, start: dt.date, actor: str) -> tuple[StoredReport, bool]:
    """Store the report once (the unique (kind, period_start) decides between racing
    workers). Returns (report, created)."""
    existing = StoredReport.objects.filter(kind=kind, period_start=start).first()
    if existing is not None:
        return existing, False
    end, data = report_data_build(kind=kind, start=start)
    try:
        with transaction.atomic():
            stored = StoredReport.objects.create(
                kind=kind, period_start=start, period_end=end, data=data, created_by=actor
            )
    except IntegrityError:
        return StoredReport.objects.get(kind=kind, period_start=start), False
    return stored, True


CSV_DAILY_HEADER = [
    "day",
    "revenue",
    "driver_share",
    "target_contribution",
    "transactions",
    "drivers_counted",
    "drivers_at_target",
    "achievement_rate",
    "drivers_below_target",
    "drivers_at_risk",
    "vehicles_active",
    "vehicles_available",
    "vehicles_charging",
]


def report_csv(report: StoredReport) -> str:
    buffer = io.StringIO()
    data = report.data
    if report.kind == ReportKind.DAILY:
        writer = csv.DictWriter(buffer, fieldnames=CSV_DAILY_HEADER)
        writer.writeheader()
        row = dict(data)
        row["drivers_below_target"] = "; ".join(data["drivers_below_target"])
        row["drivers_at_risk"] = "; ".join(data["drivers_at_risk"])
        writer.writerow(row)
    else:
        plain = csv.writer(buffer)
        plain.writerow(["driver_id", "name", *data["days"], "total"])
        for row in data["rows"]:
            total = sum((Decimal(a) for a in row["contributions"]), ZERO)
            plain.writerow([row["driver_id"], row["name"], *row["contributions"], _text(total)])
        plain.writerow(["", "revenue", *data["revenue_per_day"], ""])
    return buffer.getvalue()


def report_filename(report: StoredReport) -> str:
    return f"tuktuk-{report.kind}-report-{report.period_start.isoformat()}.csv"


def report_text(report: StoredReport) -> str:
    """The email body: the figures in plain text (no emoji: some mail readers lack them)."""
    data = report.data
    if report.kind == ReportKind.DAILY:
        lines = [
            f"TukTuk Ledger daily report for {data['day']}",
            "",
            f"Revenue: {format_ksh(Decimal(data['revenue']))} KSH "
            f"({data['transactions']} transactions)",
            f"Driver share: {format_ksh(Decimal(data['driver_share']))} KSH",
            f"Target contribution: {format_ksh(Decimal(data['target_contribution']))} KSH",
            f"Drivers at target: {data['drivers_at_target']} of {data['drivers_counted']} "
            f"({data['achievement_rate']}%)",
            f"Vehicles: {data['vehicles_active']} active, {data['vehicles_available']} "
            f"available, {data['vehicles_charging']} charging",
            "",
            f"Below target ({len(data['drivers_below_target'])}):",
            *(f"  {name}" for name in data["drivers_below_target"]),
            "",
            f"At risk, two misses in a row ({len(data['drivers_at_risk'])}):",
            *(f"  {name}" for name in data["drivers_at_risk"]),
        ]
    else:
        lines = [
            f"TukTuk Ledger weekly report, {data['start']} to {data['end']}",
            "",
            "Daily target contributions per driver are in the attached CSV.",
            f"Drivers: {len(data['rows'])}",
            "Revenue per day: "
            + ", ".join(
                f"{d} {format_ksh(Decimal(a))}"
                for d, a in zip(data["days"], data["revenue_per_day"], strict=True)
            ),
        ]
    return "\n".join(lines)


def report_email_send(*, report: StoredReport) -> bool:
    """Email a stored report (CSV attached) to the alert recipients, once: the emailed_at
    claim is a compare-and-swap, released again when the mail server fails."""
    recipients = alert_recipients()
    if not recipients:
        return False
    claimed = StoredReport.objects.filter(pk=report.pk, emailed_at__isnull=True).update(
        emailed_at=timezone.now(), emailed_to=", ".join(recipients)
    )
    if not claimed:
        return False
    message = EmailMessage(
        subject=str(report),
        body=report_text(report),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        connection=get_connection(fail_silently=False),
    )
    message.attach(report_filename(report), report_csv(report), "text/csv")
    try:
        message.send()
    except Exception:
        StoredReport.objects.filter(pk=report.pk).update(emailed_at=None, emailed_to="")
        raise
    return True


def reports_due_store(*, actor: str = "worker") -> list[StoredReport]:
    """The worker's pass: once every due day has closed, store (and return, for emailing) the
    daily report of the last closed day and, when that day is a Sunday, the weekly report of
    its week. Nothing is stored while a close is still due; only the pass that stores a report
    emails it (a mail outage is an "Alert Email Failed" event; the report stays in the admin)."""
    fleet = FleetSettings.load()
    if days_due(fleet):
        return []
    last = current_business_day(fleet) - dt.timedelta(days=1)
    made = []
    report, created = report_store(kind=ReportKind.DAILY, start=last, actor=actor)
    if created:
        made.append(report)
    if last.weekday() == 6:
        weekly, created = report_store(
            kind=ReportKind.WEEKLY, start=week_start_of(last), actor=actor
        )
        if created:
            made.append(weekly)
    return made
