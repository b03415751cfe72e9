"""Closing a driver's business day: exactly once, under the driver row lock.

The same function serves the batch close (worker / `tuktuk close-day`) and the lazy roll inside
posting, so a payment that finds the driver still on an earlier day closes that day first and
its split sees the new day's balance, even when the worker was down at midnight. It works on a
set of locked driver rows in a fixed number of statements, however many: a thousand at a time
in the batch close (10,000 drivers in about 1.5 s on PostgreSQL), one in a posting.

A day closes only when it is ready: its cutoff is DAY_CLOSE_SETTLE_SECONDS past, and no
confirmation received before the cutoff is still waiting to be posted (a fare belongs to the day
it was received, so the close must not run ahead of it). Both are re-checked under the driver's
lock, by every path that closes; the database refuses entries on a closed day
(migration 0003_closed_day_guard).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, Sum
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.db import atomic_with_retry, rows_insert
from tuktuk.core.errors import Conflict, InvalidInput
from tuktuk.core.money import ZERO, money, whole_shillings_down
from tuktuk.fleet.assignments import drivers_off, drivers_vehicles_lock, drivers_with_vehicle
from tuktuk.fleet.balance import BalanceAfterClose, drivers_balance_after_close
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger import ports
from tuktuk.ledger.business_day import business_day_of, day_close_moment
from tuktuk.ledger.deposit_book import Shortfall, deductions_propose
from tuktuk.ledger.models import DayClose, EntryKind, LedgerEntry
from tuktuk.ledger.ports import BonusToQueue

TERMINATION_REVIEW_MISSES = 3
# Drivers closed per transaction by the batch close: big enough that 10,000 drivers take a few
# dozen statements, small enough that a chunk's row locks are held for a fraction of a second
# and no statement nears a database's parameter limit (SQLite's 32,766).
DAY_CLOSE_CHUNK = 1000


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


def ledger_sums(*, driver_pks: Collection[int], business_day: dt.date) -> dict[int, Decimal]:
    """Each driver's ledger sum on the day (0 for a driver with no entry). One query."""
    sums = {driver_pk: ZERO for driver_pk in driver_pks}
    for driver_pk, total in (
        LedgerEntry.objects.filter(driver_id__any_of=set(driver_pks), business_day=business_day)
        .values("driver_id")
        .annotate(total=Sum("amount"))
        .order_by()
        .values_list("driver_id", "total")
    ):
        sums[driver_pk] = money(total or ZERO)
    return sums


def ledger_sum(*, driver_id: int, business_day: dt.date) -> Decimal:
    return ledger_sums(driver_pks=[driver_id], business_day=business_day)[driver_id]


@dataclass(frozen=True)
class ClosedDay:
    """A driver's business day that a close has just closed (its DayClose row is written)."""

    driver_pk: int
    business_day: dt.date


@dataclass(frozen=True)
class CloseVerdict:
    """What closing one driver's day decides (DESIGN.md, money rules: the day close)."""

    closing: Decimal
    target: Decimal
    sharing: bool
    paused: bool
    met: bool
    consecutive_misses: int
    carried_over: Decimal
    flagged_for_review: bool


def close_verdict(
    *, driver: Driver, closing: Decimal, fleet: FleetSettings, paused: bool
) -> CloseVerdict:
    """The rules of one driver's close, from its locked row and its day's ledger sum.

    A paused day (the driver could not work it: a day off, no vehicle for the whole day, or
    away after a termination) records no miss and adds no debt: the misses stay as they were
    and only a debt the day opened with is carried on."""
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
    return CloseVerdict(closing, target, sharing, paused, met, misses, carried, flagged)


def drivers_day_close(
    *, drivers: Sequence[Driver], day: dt.date, fleet: FleetSettings, paused: bool = False
) -> list[ClosedDay]:
    """Close `day` for driver rows the caller has locked, all on that day (`paused`: as paused
    days), and move them to the next day. A fixed number of statements however many drivers:
    the batch close runs it over a thousand at a time, a posting's lazy close over one.

    A driver whose day is closed already (by someone else, the row not moved on) is only moved
    on. Returns the closes written."""
    pks = [driver.pk for driver in drivers]
    closed_before = set(
        DayClose.objects.filter(driver_id__any_of=set(pks), business_day=day).values_list(
            "driver_id", flat=True
        )
    )
    next_day = day + dt.timedelta(days=1)
    if closed_before:
        Driver.objects.filter(pk__any_of=set(closed_before)).update(balance_day=next_day)
        for driver in drivers:
            if driver.pk in closed_before:
                driver.balance_day = next_day
    closing = [driver for driver in drivers if driver.pk not in closed_before]
    if not closing:
        return []
    sums = ledger_sums(driver_pks=[d.pk for d in closing], business_day=day)
    paused_pks = (
        set(sums) if paused else drivers_paused_on(driver_pks=list(sums), day=day, fleet=fleet)
    )
    verdicts = [
        (
            driver,
            close_verdict(
                driver=driver, closing=sums[driver.pk], fleet=fleet, paused=driver.pk in paused_pks
            ),
        )
        for driver in closing
    ]
    rows_insert(
        model=DayClose,
        rows=[
            {
                "driver_id": driver.pk,
                "business_day": day,
                "closing_balance": v.closing,
                "cached_balance": money(driver.current_balance),
                "target": v.target,
                "target_met": v.met,
                "sharing": v.sharing,
                "carried_over": v.carried_over,
                "consecutive_misses": v.consecutive_misses,
                "flagged_for_review": v.flagged_for_review,
                "paused": v.paused,
            }
            for driver, v in verdicts
        ],
    )
    deductions_propose(
        day=day,
        shortfalls=[
            Shortfall(driver=driver, amount=v.target - v.closing)
            for driver, v in verdicts
            if not v.met and not v.paused
        ],
    )
    rows_insert(
        model=LedgerEntry,
        rows=[
            {
                "driver_id": driver.pk,
                "business_day": next_day,
                "kind": EntryKind.OPENING.value,
                "amount": v.carried_over,
                "note": f"carried over from {day.isoformat()}",
            }
            for driver, v in verdicts
        ],
    )
    # Built before the rows and their objects are set: who this very close flags.
    flagged_now = [
        events.EventDraft(
            title=events.EventTitle.TERMINATION_REVIEW,
            level=events.EventLevel.WARNING,
            driver=driver,
            message=f"{driver.driver_id} missed the target {v.consecutive_misses} days in a row",
            data={"business_day": day.isoformat(), "consecutive_misses": v.consecutive_misses},
        )
        for driver, v in verdicts
        if v.flagged_for_review and not driver.flagged_for_review
    ]
    drivers_balance_after_close(
        rows=[
            BalanceAfterClose(
                driver=driver,
                target=v.target,
                balance=v.carried_over,
                balance_day=next_day,
                consecutive_misses=v.consecutive_misses,
                flagged_for_review=v.flagged_for_review,
            )
            for driver, v in verdicts
        ]
    )
    events.events_record(drafts=flagged_now)
    bonus = whole_shillings_down(fleet.bonus_amount)
    if fleet.bonus_enabled and bonus > 0:
        ports.payout_outbox().bonuses_queue(
            bonuses=[
                BonusToQueue(
                    driver=driver,
                    business_day=day,
                    amount=bonus,
                    instant=driver.effective_instant_payout(fleet),
                )
                for driver, v in verdicts
                if v.met and not v.paused
            ]
        )
    return [ClosedDay(driver_pk=driver.pk, business_day=day) for driver, _ in verdicts]


def drivers_paused_on(
    *, driver_pks: Collection[int], day: dt.date, fleet: FleetSettings
) -> set[int]:
    """Those of the drivers off on the roster, or with no vehicle at any moment of the day."""
    opened = day_close_moment(day - dt.timedelta(days=1), fleet=fleet)
    with_vehicle = drivers_with_vehicle(
        driver_pks=driver_pks, start=opened, end=day_close_moment(day, fleet=fleet)
    )
    return drivers_off(driver_pks=driver_pks, day=day) | (set(driver_pks) - with_vehicle)


def drivers_roll_to_day(
    *, drivers: Sequence[Driver], day: dt.date, fleet: FleetSettings, paused: bool = False
) -> list[ClosedDay]:
    """Close every business day before `day` that the locked driver rows are still on, oldest
    first (as paused days with `paused`). Raises DayCloseNotReady (the caller's transaction
    rolls back, releasing the locks) when one of them must wait."""
    closes: list[ClosedDay] = []
    unset = [driver for driver in drivers if driver.balance_day is None]
    if unset:
        Driver.objects.filter(pk__any_of={driver.pk for driver in unset}).update(balance_day=day)
        for driver in unset:
            driver.balance_day = day
    while behind := [d for d in drivers if d.balance_day is not None and d.balance_day < day]:
        oldest = min(d.balance_day for d in behind if d.balance_day is not None)
        day_close_require_ready(day=oldest, fleet=fleet)
        closes += drivers_day_close(
            drivers=[d for d in behind if d.balance_day == oldest],
            day=oldest,
            fleet=fleet,
            paused=paused,
        )
    return closes


def driver_roll_to_day(
    *, driver: Driver, day: dt.date, fleet: FleetSettings, paused: bool = False
) -> list[ClosedDay]:
    """drivers_roll_to_day for one locked driver row (a posting's lazy close, a fix, an exit)."""
    return drivers_roll_to_day(drivers=[driver], day=day, fleet=fleet, paused=paused)


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
    """Close every active driver's days up to `through_day` (default: all due), in day order,
    DAY_CLOSE_CHUNK drivers per transaction (in primary-key order, as every lock is taken).
    Running it twice closes nothing twice. Raises DayCloseNotReady while a day to close must
    still wait (nothing closed for that day)."""
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
    pending = Driver.objects.filter(
        Q(balance_day__lte=last) | Q(balance_day__isnull=True), is_active=True
    )
    behind = dict(pending.order_by("pk").values_list("pk", "balance_day"))
    driver_pks = list(behind)
    for start in range(0, len(driver_pks), DAY_CLOSE_CHUNK):
        chunk = driver_pks[start : start + DAY_CLOSE_CHUNK]
        # A driver more than a day behind has its row updated more than once here, which
        # makes PostgreSQL re-check its vehicle key: its vehicle is then locked first, as every
        # posting locks vehicles before drivers (drivers_vehicles_lock says why). Read before
        # the lock, this can only overstate: a posting meanwhile moves a row forward only.
        catching_up = [pk for pk in chunk if (day := behind[pk]) is not None and day < last]

        def roll(chunk: list[int] = chunk, catching_up: list[int] = catching_up) -> int:
            if catching_up:
                drivers_vehicles_lock(driver_pks=catching_up)
            # The rows are read again under the lock: a posting may have rolled one.
            drivers = list(
                Driver.objects.select_for_update()
                .filter(pk__any_of=set(chunk), is_active=True)
                .order_by("pk")
            )
            return len(
                drivers_roll_to_day(drivers=drivers, day=last + dt.timedelta(days=1), fleet=fleet)
            )

        closed += atomic_with_retry(roll, attempts=5, label="day_close")
    if closed:
        events.event_record(
            title=events.EventTitle.DAY_CLOSED,
            message=f"{closed} driver-day(s) closed through {last.isoformat()}",
            data={"through_day": last.isoformat(), "closed": closed},
        )
    return closed
