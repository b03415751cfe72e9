"""Closing a driver's business day: exactly once, under the driver row lock.

The same function serves the batch close (worker / `tuktuk close-day`) and the lazy roll inside
posting, so a payment that finds the driver still on an earlier day closes that day first and
its split sees the new day's balance, even when the worker was down at midnight.

A day closes only when it is ready: its cutoff is DAY_CLOSE_SETTLE_SECONDS past, and no
confirmation received before the cutoff is still waiting to be posted (a fare belongs to the day
it was received, so the close must not run ahead of it). Both are re-checked under the driver's
lock, by every path that closes; the database refuses entries on a closed day
(migration 0003_closed_day_guard).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.db import atomic_with_retry
from tuktuk.core.errors import Conflict, InvalidInput
from tuktuk.core.money import ZERO, money, whole_shillings_down
from tuktuk.fleet.assignments import driver_had_vehicle, driver_is_off
from tuktuk.fleet.balance import driver_balance_set
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger import ports
from tuktuk.ledger.business_day import business_day_of, day_close_moment
from tuktuk.ledger.deposit_book import deduction_propose
from tuktuk.ledger.models import DayClose, EntryKind, LedgerEntry

TERMINATION_REVIEW_MISSES = 3


class DayCloseNotReady(Conflict):
    """The day cannot close yet; retrying after the wait is the answer."""

    def __init__(self, *, day: dt.date, reason: str) -> None:
        super().__init__(f"the close of {day.isoformat()} is waiting: {reason}")
        self.day = day


def day_close_readiness(*, day: dt.date, fleet: FleetSettings) -> str | None:
    """Why `day` cannot close yet, or None when it can."""
    cutoff = day_close_moment(day, fleet=fleet)
    settled = cutoff + dt.timedelta(seconds=settings.DAY_CLOSE_SETTLE_SECONDS)
    if timezone.now() < settled:
        return f"confirmations stored up to its cutoff may still be committing until {settled}"
    waiting = ports.confirmation_inbox().unposted_received_before(moment=cutoff)
    if waiting:
        return f"{waiting} confirmation(s) received before its cutoff are not posted yet"
    return None


def day_close_require_ready(*, day: dt.date, fleet: FleetSettings) -> None:
    reason = day_close_readiness(day=day, fleet=fleet)
    if reason is not None:
        raise DayCloseNotReady(day=day, reason=reason)


def ledger_sum(*, driver_id: int, business_day: dt.date) -> Decimal:
    total = LedgerEntry.objects.filter(driver_id=driver_id, business_day=business_day).aggregate(
        total=Sum("amount")
    )["total"]
    return money(total or ZERO)


def driver_day_close(
    *, driver: Driver, day: dt.date, fleet: FleetSettings, paused: bool = False
) -> DayClose | None:
    """Close `day` for a driver whose row the caller has locked. None if it was already closed.

    A paused day (the driver could not work it: a day off, no vehicle for the whole day, or
    away after a termination) records no miss and adds no debt: the misses stay as they were
    and only a debt the day opened with is carried on."""
    paused = paused or driver_paused_on(driver=driver, day=day, fleet=fleet)
    closing = ledger_sum(driver_id=driver.pk, business_day=day)
    target = driver.effective_target(fleet)
    sharing = driver.effective_sharing(fleet)
    met = closing >= target
    if paused:
        misses = driver.consecutive_misses
        carried = min(closing, ZERO) if sharing else ZERO
    else:
        misses = 0 if met else driver.consecutive_misses + 1
        carried = -(target - closing) if (sharing and not met) else ZERO
    flagged = driver.flagged_for_review or (sharing and misses >= TERMINATION_REVIEW_MISSES)
    try:
        with transaction.atomic():  # savepoint: a second close of the same day is a no-op
            close = DayClose.objects.create(
                driver=driver,
                business_day=day,
                closing_balance=closing,
                cached_balance=driver.current_balance,
                target=target,
                target_met=met,
                sharing=sharing,
                carried_over=carried,
                consecutive_misses=misses,
                flagged_for_review=flagged,
                paused=paused,
            )
    except IntegrityError:
        return None
    if not met and not paused:
        deduction_propose(driver=driver, day=day, shortfall=target - closing)
    next_day = day + dt.timedelta(days=1)
    LedgerEntry.objects.create(
        driver=driver,
        business_day=next_day,
        kind=EntryKind.OPENING,
        amount=carried,
        note=f"carried over from {day.isoformat()}",
    )
    driver_balance_set(
        driver_pk=driver.pk,
        target=target,
        balance=carried,
        day=next_day,
        consecutive_misses=misses,
        flagged_for_review=flagged,
    )
    if flagged and not driver.flagged_for_review:
        events.event_record(
            title=events.EventTitle.TERMINATION_REVIEW,
            level=events.EventLevel.WARNING,
            driver=driver,
            message=f"{driver.driver_id} missed the target {misses} days in a row",
            data={"business_day": day.isoformat(), "consecutive_misses": misses},
        )
    bonus = whole_shillings_down(fleet.bonus_amount)
    if met and not paused and fleet.bonus_enabled and bonus > 0:
        ports.payout_outbox().bonus_queue(
            driver=driver,
            business_day=day,
            amount=bonus,
            instant=driver.effective_instant_payout(fleet),
        )
    driver.refresh_from_db()
    return close


def driver_paused_on(*, driver: Driver, day: dt.date, fleet: FleetSettings) -> bool:
    """Off on the roster, or no vehicle at any moment of the business day."""
    if driver_is_off(driver_pk=driver.pk, day=day):
        return True
    opened = day_close_moment(day - dt.timedelta(days=1), fleet=fleet)
    return not driver_had_vehicle(
        driver_pk=driver.pk, start=opened, end=day_close_moment(day, fleet=fleet)
    )


def driver_roll_to_day(
    *, driver: Driver, day: dt.date, fleet: FleetSettings, paused: bool = False
) -> list[DayClose]:
    """Close every business day before `day` that the locked driver row is still on, in order
    (as paused days with `paused`). Raises DayCloseNotReady (the caller's transaction rolls
    back, releasing the lock) when one of them must wait."""
    closes: list[DayClose] = []
    if driver.balance_day is None:
        Driver.objects.filter(pk=driver.pk).update(balance_day=day)
        driver.balance_day = day
        return closes
    while driver.balance_day < day:
        day_close_require_ready(day=driver.balance_day, fleet=fleet)
        close = driver_day_close(driver=driver, day=driver.balance_day, fleet=fleet, paused=paused)
        if close is None:
            # Already closed by someone else but the row was not moved on: move it now.
            Driver.objects.filter(pk=driver.pk).update(
                balance_day=driver.balance_day + dt.timedelta(days=1)
            )
            driver.refresh_from_db()
        else:
            closes.append(close)
    return closes


def current_business_day(fleet: FleetSettings) -> dt.date:
    return business_day_of(timezone.now(), fleet=fleet)


def days_due(fleet: FleetSettings) -> list[dt.date]:
    """Business days some active driver has not closed although their close time has passed."""
    today = current_business_day(fleet)
    oldest = (
        Driver.objects.filter(is_active=True, balance_day__lt=today)
        .order_by("balance_day")
        .values_list("balance_day", flat=True)
        .first()
    )
    if oldest is None:
        return []
    return [oldest + dt.timedelta(days=n) for n in range((today - oldest).days)]


def day_close_run(*, through_day: dt.date | None = None) -> int:
    """Close every active driver's days up to `through_day` (default: all due), each driver in
    its own transaction, in day order. Running it twice closes nothing twice. Raises
    DayCloseNotReady while a day to close must still wait (nothing closed for that day)."""
    fleet = FleetSettings.load()
    today = current_business_day(fleet)
    last = through_day or today - dt.timedelta(days=1)
    if last >= today:
        raise InvalidInput(
            f"{last} is still open; days up to {today - dt.timedelta(days=1)} can close"
        )
    oldest = (
        Driver.objects.filter(is_active=True, balance_day__lte=last)
        .order_by("balance_day")
        .values_list("balance_day", flat=True)
        .first()
    )
    day = oldest
    while day is not None and day <= last:
        # Checked once up front for a clear answer; each driver's roll checks again under its lock.
        day_close_require_ready(day=day, fleet=fleet)
        day += dt.timedelta(days=1)
    closed = 0
    for driver_pk in Driver.objects.filter(is_active=True).values_list("pk", flat=True):

        def roll(pk: int = driver_pk) -> int:
            driver = Driver.objects.select_for_update().get(pk=pk)
            return len(
                driver_roll_to_day(driver=driver, day=last + dt.timedelta(days=1), fleet=fleet)
            )

        closed += atomic_with_retry(roll, attempts=5, label="day_close")
    if closed:
        events.event_record(
            title=events.EventTitle.DAY_CLOSED,
            message=f"{closed} driver-day(s) closed through {last.isoformat()}",
            data={"through_day": last.isoformat(), "closed": closed},
        )
    return closed
