"""The automatic messages, derived by the worker from rows already committed.

Why here and not through a port the ledger calls: the money path (posting, the day close, the
payout result) stays exactly as it is, so an SMS bug or outage can never roll back or slow down
a payment; and a message exists only for money that really committed. Each kind keeps a
high-water mark (backoffice.schedule) of how far it has looked, and each pass looks again over
an overlap window before the mark, because a row with an earlier timestamp can commit after a
later one; the message's unique key makes looking twice (or two workers looking at once) queue
it once. A mark is set to "now" the first time, so switching SMS on does not text the history.

- fare credited: completed fares (`Transaction`, type Payment) since the mark, only while the
  fleet's `sms_fare_credited` is on;
- payout sent: payouts completed since the mark;
- day-close summary: day closes since the mark (not a paused day: nobody worked);
- target reminders: at each of the fleet's reminder times (local), within a grace period, to
  regular drivers with a vehicle who are below today's target and not off today.
Drivers who opted out get none of these.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from tuktuk.backoffice.schedule import schedule_mark_advance, schedule_mark_get
from tuktuk.backoffice.sms.models import SmsKind
from tuktuk.backoffice.sms.services import sms_queue
from tuktuk.backoffice.sms.texts import render
from tuktuk.core.money import ZERO, format_ksh, money
from tuktuk.fleet.models import DayOff, Driver, FleetSettings, times_of_day_parse
from tuktuk.ledger.business_day import business_day_of
from tuktuk.ledger.models import (
    DayClose,
    LedgerEntry,
    Transaction,
    TransactionSource,
    TransactionStatus,
    TransactionType,
)
from tuktuk.payouts.models import Payout, PayoutState

# How far before its mark each pass looks again (a posting commits within seconds of its
# timestamp; a payout result or a close within the same transaction as theirs).
OVERLAP = dt.timedelta(minutes=10)
# A reminder more than this late (the worker was down at 13:00) is not sent any more.
REMINDER_GRACE = dt.timedelta(minutes=30)
MARK_FARES = "sms-mark-fares"
MARK_FARES_FLOOR = "sms-mark-fares-off"
MARK_PAYOUTS = "sms-mark-payouts"
MARK_DAY_CLOSES = "sms-mark-day-closes"


def _window(name: str, now: dt.datetime) -> dt.datetime | None:
    """Where this pass starts looking, or None the first time (then the mark starts now)."""
    mark = schedule_mark_get(name=name)
    if mark is None:
        schedule_mark_advance(name=name, to=now)
        return None
    return mark - OVERLAP


def _local_time(moment: dt.datetime | None) -> str:
    return timezone.localtime(moment).strftime("%H:%M") if moment else ""


def _balance_after(tx: Transaction) -> Decimal:
    """The driver's balance of the fare's business day right after its contribution entry
    (postings of one driver are serialised by the driver's row lock, so entry ids are in
    order)."""
    entry = LedgerEntry.objects.filter(transaction=tx).values_list("pk", "business_day").first()
    if entry is None:
        return money(tx.driver.current_balance) if tx.driver else ZERO
    total = LedgerEntry.objects.filter(
        driver=tx.driver, business_day=entry[1], pk__lte=entry[0]
    ).aggregate(total=Sum("amount"))["total"]
    return money(total or ZERO)


def fares_derive(*, fleet: FleetSettings, now: dt.datetime) -> int:
    since = _window(MARK_FARES, now)
    if not fleet.sms_fare_credited:
        # Switched on later: from the last pass that saw it off, never the fares before.
        schedule_mark_advance(name=MARK_FARES, to=now)
        schedule_mark_advance(name=MARK_FARES_FLOOR, to=now)
        return 0
    if since is None:
        return 0
    floor = schedule_mark_get(name=MARK_FARES_FLOOR)
    if floor is not None:
        since = max(since, floor)
    queued = 0
    fares = (
        Transaction.objects.filter(
            transaction_type=TransactionType.PAYMENT,
            status=TransactionStatus.COMPLETED,
            created_at__gte=since,
            created_at__lte=now,
            driver__sms_opt_out=False,
        )
        .exclude(source=TransactionSource.LEGACY)
        .select_related("driver", "vehicle")
        .order_by("pk")
    )
    for tx in fares:
        driver = tx.driver
        assert driver is not None  # completed payments have a driver (a constraint)
        balance = _balance_after(tx)
        target = driver.effective_target(fleet)
        values: dict[str, Any] = {
            "amount": money(tx.amount),
            "time": _local_time(tx.mpesa_time or tx.received_at),
            "vehicle": tx.vehicle.vehicle_id if tx.vehicle else tx.account_reference,
            "share": money(tx.driver_share),
            "balance": balance,
            "target": money(target),
            "left": max(ZERO, money(target) - balance),
            "trans_id": tx.trans_id,
            "name": driver.name,
        }
        queued += (
            sms_queue(
                kind=SmsKind.FARE_CREDITED,
                driver=driver,
                phone=driver.mpesa_number,
                text=render(fleet.sms_template_fare_credited, values),
                key=f"fare:{tx.trans_id}",
            )
            is not None
        )
    schedule_mark_advance(name=MARK_FARES, to=now)
    return queued


def payouts_derive(*, fleet: FleetSettings, now: dt.datetime) -> int:
    since = _window(MARK_PAYOUTS, now)
    if since is None:
        return 0
    queued = 0
    for payout in (
        Payout.objects.filter(
            state=PayoutState.COMPLETED,
            completed_at__gte=since,
            completed_at__lte=now,
            driver__sms_opt_out=False,
        )
        .select_related("driver")
        .order_by("pk")
    ):
        values = {
            "amount": money(payout.amount),
            "receipt": payout.receipt,
            "phone_tail": f"ending {payout.phone[-3:]}",
            "name": payout.driver.name,
        }
        queued += (
            sms_queue(
                kind=SmsKind.PAYOUT_SENT,
                driver=payout.driver,
                phone=payout.driver.mpesa_number,
                text=render(fleet.sms_template_payout_sent, values),
                key=f"payout:{payout.pk}",
            )
            is not None
        )
    schedule_mark_advance(name=MARK_PAYOUTS, to=now)
    return queued


def day_closes_derive(*, fleet: FleetSettings, now: dt.datetime) -> int:
    since = _window(MARK_DAY_CLOSES, now)
    if since is None:
        return 0
    queued = 0
    for close in (
        DayClose.objects.filter(
            closed_at__gte=since, closed_at__lte=now, paused=False, driver__sms_opt_out=False
        )
        .select_related("driver")
        .order_by("pk")
    ):
        closing = money(close.closing_balance)
        target = money(close.target)
        result = (
            "target met" if close.target_met else f"short by KES {format_ksh(target - closing)}"
        )
        values = {
            "day": close.business_day.strftime("%a %d %b"),
            "closing": closing,
            "target": target,
            "result": result,
            "carried_over": money(close.carried_over),
            "name": close.driver.name,
        }
        queued += (
            sms_queue(
                kind=SmsKind.DAY_CLOSE,
                driver=close.driver,
                phone=close.driver.mpesa_number,
                text=render(fleet.sms_template_day_close, values),
                key=f"dayclose:{close.driver_id}:{close.business_day.isoformat()}",
            )
            is not None
        )
    schedule_mark_advance(name=MARK_DAY_CLOSES, to=now)
    return queued


@dataclass(frozen=True)
class ReminderSlot:
    day: dt.date  # the local calendar day of the reminder
    at: dt.time
    moment: dt.datetime


def reminder_slots_due(*, fleet: FleetSettings, now: dt.datetime) -> list[ReminderSlot]:
    """The reminder times whose moment has come, and is at most REMINDER_GRACE ago."""
    local = timezone.localtime(now)
    slots = []
    for day in (local.date() - dt.timedelta(days=1), local.date()):
        for at in times_of_day_parse(fleet.sms_reminder_times):
            moment = timezone.make_aware(dt.datetime.combine(day, at))
            if moment <= now < moment + REMINDER_GRACE:
                slots.append(ReminderSlot(day=day, at=at, moment=moment))
    return slots


def reminders_derive(*, fleet: FleetSettings, now: dt.datetime) -> int:
    queued = 0
    for slot in reminder_slots_due(fleet=fleet, now=now):
        business_day = business_day_of(slot.moment, fleet=fleet)
        off = set(DayOff.objects.filter(day=business_day).values_list("driver_id", flat=True))
        drivers = Driver.objects.filter(
            is_active=True,
            terminated_at__isnull=True,
            is_substitute=False,
            vehicle__isnull=False,
            sms_opt_out=False,
        ).order_by("pk")
        for driver in drivers:
            if driver.pk in off:
                continue
            if driver.balance_day == business_day:
                balance = money(driver.current_balance)
            elif driver.balance_day is None:
                balance = ZERO  # never paid: nothing yet
            else:
                continue  # an earlier day still open: its close comes first
            target = money(driver.effective_target(fleet))
            left = max(ZERO, target - balance)
            if left <= 0:
                continue
            values = {
                "time": slot.at.strftime("%H:%M"),
                "balance": balance,
                "target": target,
                "left": left,
                "name": driver.name,
            }
            queued += (
                sms_queue(
                    kind=SmsKind.REMINDER,
                    driver=driver,
                    phone=driver.mpesa_number,
                    text=render(fleet.sms_template_reminder, values),
                    key=f"reminder:{driver.pk}:{slot.day.isoformat()}:{slot.at:%H%M}",
                    expires_at=slot.moment + dt.timedelta(hours=1),
                )
                is not None
            )
    return queued


def sms_derive(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Queue every automatic message that is due (see the module docstring)."""
    moment = now or timezone.now()
    fleet = FleetSettings.load()
    return {
        "fares": fares_derive(fleet=fleet, now=moment),
        "payouts": payouts_derive(fleet=fleet, now=moment),
        "day_closes": day_closes_derive(fleet=fleet, now=moment),
        "reminders": reminders_derive(fleet=fleet, now=moment),
    }
