"""Operator services for who drives today: assignments and handovers, substitutes, vehicle
status, the roster. Each locks the vehicle row (the posting locks it too, so a fare and a
handover are ordered), re-checks, writes through `fleet.assignments`, and records an event
naming the actor.

The ledger's part is the guard: an assignment may start in the past only where no fare has
been credited since on that vehicle to somebody else, since moving the history under money
already paid out would make the statements lie.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.dates import day_parse
from tuktuk.core.errors import InvalidInput, NotFound, require_reason
from tuktuk.fleet import assignments
from tuktuk.fleet.models import Assignment, DayOff, Driver, FleetSettings, RosterPeriod, Vehicle
from tuktuk.fleet.phone import InvalidPhoneNumber, normalize_msisdn
from tuktuk.fleet.selectors import driver_get
from tuktuk.fleet.services import driver_ids_next
from tuktuk.ledger.business_day import day_close_moment
from tuktuk.ledger.models import Transaction, TransactionStatus


def vehicle_locked(vehicle_id: str) -> Vehicle:
    vehicle = Vehicle.objects.select_for_update().filter(vehicle_id=vehicle_id.strip()).first()
    if vehicle is None:
        raise NotFound(f"no vehicle {vehicle_id!r}")
    return vehicle


def _fares_since(
    vehicle: Vehicle, start: dt.datetime, end: dt.datetime | None, *, other_than: Driver | None
) -> int:
    fares = Transaction.objects.filter(
        vehicle=vehicle, status=TransactionStatus.COMPLETED, mpesa_time__gte=start
    )
    if end is not None:
        fares = fares.filter(mpesa_time__lt=end)
    if other_than is not None:
        fares = fares.exclude(driver=other_than)
    return fares.count()


def _not_over_posted_fares(
    vehicle: Vehicle, start: dt.datetime, end: dt.datetime | None, driver: Driver | None
) -> None:
    # Checked whatever `start` is: under the vehicle lock it also catches a fare whose M-Pesa
    # time is after a planned handover and that was posted before it.
    posted = _fares_since(vehicle, start, end, other_than=driver)
    if posted:
        raise InvalidInput(
            f"{posted} fare(s) paid to {vehicle.vehicle_id} since {timezone.localtime(start)} "
            "are already credited to another driver; start the assignment after them"
        )


def vehicle_assign_by(
    *,
    vehicle_id: str,
    driver_id: str | None,
    actor: str,
    reason: str = "",
    at: dt.datetime | None = None,
) -> Assignment | None:
    """Give the vehicle to a driver from `at` (default now), handing it over from whoever
    drove it; `driver_id` None takes it from its driver."""
    moment = at or timezone.now()
    driver = driver_get(ref=driver_id) if driver_id else None
    with transaction.atomic():
        vehicle = vehicle_locked(vehicle_id)
        _not_over_posted_fares(vehicle, moment, None, driver)
        made = assignments.vehicle_assign(
            vehicle=vehicle, driver=driver, at=moment, actor=actor, reason=reason
        )
    events.event_record(
        title=events.EventTitle.VEHICLE_ASSIGNED,
        driver=driver,
        actor=actor,
        message=f"{vehicle.vehicle_id} "
        + (f"assigned to {driver.driver_id}" if driver else "unassigned")
        + f" from {timezone.localtime(moment):%Y-%m-%d %H:%M}"
        + (f": {reason}" if reason else ""),
        data={"vehicle": vehicle.vehicle_id, "at": moment.isoformat()},
    )
    return made


def substitute_assign_by(
    *,
    vehicle_id: str,
    substitute_id: str,
    date_from: dt.date | str,
    date_to: dt.date | str | None = None,
    actor: str,
    reason: str = "",
) -> Assignment:
    """The substitute drives the vehicle for business days date_from..date_to (inclusive)."""
    first = day_parse(date_from, name="from")
    last = day_parse(date_to, name="to") or first
    if first is None or last is None:
        raise InvalidInput("give the first day of the cover")
    if last < first:
        raise InvalidInput("the cover must end on or after its first day")
    substitute = driver_get(ref=substitute_id)
    if not substitute.is_substitute:
        raise InvalidInput(f"{substitute.driver_id} is not a substitute driver")
    fleet = FleetSettings.load()
    starts = day_close_moment(first - dt.timedelta(days=1), fleet=fleet)
    ends = day_close_moment(last, fleet=fleet)
    with transaction.atomic():
        vehicle = vehicle_locked(vehicle_id)
        _not_over_posted_fares(vehicle, starts, ends, substitute)
        cover = assignments.substitute_cover(
            vehicle=vehicle,
            substitute=substitute,
            starts_at=starts,
            ends_at=ends,
            actor=actor,
            reason=reason,
        )
    events.event_record(
        title=events.EventTitle.SUBSTITUTE_ASSIGNED,
        driver=substitute,
        actor=actor,
        message=f"{substitute.driver_id} covers {vehicle.vehicle_id} {first}..{last}"
        + (f": {reason}" if reason else ""),
        data={"vehicle": vehicle.vehicle_id, "from": first.isoformat(), "to": last.isoformat()},
    )
    return cover


def substitute_create(
    *,
    name: str,
    mpesa_number: str,
    actor: str,
    daily_target: Decimal | None = None,
    fare_percentage: Decimal | None = None,
) -> Driver:
    """A substitute driver with their own id and number; target and percentage default to the
    fleet's (empty)."""
    if not name.strip():
        raise InvalidInput("a substitute needs a name")
    try:
        number = normalize_msisdn(mpesa_number)
    except InvalidPhoneNumber as exc:
        raise InvalidInput(str(exc)) from exc
    if daily_target is not None and daily_target < 0:
        raise InvalidInput("the daily target cannot be negative")
    if fare_percentage is not None and not 0 <= fare_percentage <= 100:
        raise InvalidInput("the fare percentage is between 0 and 100")
    [driver_id] = driver_ids_next(count=1)
    substitute = Driver.objects.create(
        driver_id=driver_id,
        name=name.strip(),
        mpesa_number=number,
        is_substitute=True,
        daily_target=daily_target,
        fare_percentage=fare_percentage,
    )
    events.event_record(
        title=events.EventTitle.SUBSTITUTE_ASSIGNED,
        driver=substitute,
        actor=actor,
        message=f"substitute {driver_id} {substitute.name} added",
    )
    return substitute


def vehicle_status_change(*, vehicle_id: str, status: str, actor: str, reason: str) -> Vehicle:
    reason = require_reason(reason)
    with transaction.atomic():
        vehicle = vehicle_locked(vehicle_id)
        old = vehicle.status
        vehicle = assignments.vehicle_status_set(
            vehicle=vehicle, status=status.strip().title(), actor=actor, reason=reason
        )
    events.event_record(
        title=events.EventTitle.VEHICLE_STATUS_CHANGED,
        actor=actor,
        message=f"{vehicle.vehicle_id}: {old} → {vehicle.status}: {reason}",
        data={"vehicle": vehicle.vehicle_id, "old": old, "new": vehicle.status},
    )
    return vehicle


def roster_generate_by(
    *, date_from: dt.date | str, date_to: dt.date | str, actor: str
) -> RosterPeriod:
    first = day_parse(date_from, name="from")
    last = day_parse(date_to, name="to")
    if first is None or last is None:
        raise InvalidInput("a roster needs its first and last day")
    period = assignments.roster_generate(starts_on=first, ends_on=last, actor=actor)
    events.event_record(
        title=events.EventTitle.ROSTER_CHANGED,
        actor=actor,
        message=f"roster {first}..{last}: {period.days_off.count()} preferred day(s) off",
        data={"period": period.pk},
    )
    return period


def day_off_set_by(
    *, driver_id: str, day: dt.date | str, off: bool, actor: str, reason: str = ""
) -> DayOff | None:
    driver = driver_get(ref=driver_id)
    when = day_parse(day, name="day")
    if when is None:
        raise InvalidInput("give the day")
    changed = assignments.day_off_set(driver=driver, day=when, off=off, actor=actor, reason=reason)
    if changed:
        events.event_record(
            title=events.EventTitle.ROSTER_CHANGED,
            driver=driver,
            actor=actor,
            message=f"{driver.driver_id} {'off' if off else 'working'} on {when}"
            + (f": {reason}" if reason else ""),
        )
    return DayOff.objects.filter(driver=driver, day=when).first()
