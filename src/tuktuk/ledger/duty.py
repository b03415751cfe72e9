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

from django.db import IntegrityError, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.dates import day_parse
from tuktuk.core.errors import Conflict, InvalidInput, NotFound, require_reason
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
    vehicle_pk: int,
    start: dt.datetime,
    end: dt.datetime | None,
    *,
    other_than: Driver | None = None,
    credited_to: Driver | None = None,
) -> int:
    # A fare without an M-Pesa time was given to whoever was on duty when it was received.
    paid_at = Coalesce("mpesa_time", "received_at")
    fares = Transaction.objects.annotate(paid_at=paid_at).filter(
        vehicle_id=vehicle_pk, status=TransactionStatus.COMPLETED, paid_at__gte=start
    )
    if end is not None:
        fares = fares.filter(paid_at__lt=end)
    if other_than is not None:
        fares = fares.exclude(driver=other_than)
    if credited_to is not None:
        fares = fares.filter(driver=credited_to)
    return fares.count()


def _not_over_posted_fares(
    vehicle: Vehicle, start: dt.datetime, end: dt.datetime | None, driver: Driver | None
) -> None:
    # Checked whatever `start` is: under the vehicle lock it also catches a fare whose M-Pesa
    # time is after a planned handover and that was posted before it.
    posted = _fares_since(vehicle.pk, start, end, other_than=driver)
    if posted:
        raise InvalidInput(
            f"{posted} fare(s) paid to {vehicle.vehicle_id} since {timezone.localtime(start)} "
            "are already credited to another driver; start the assignment after them"
        )


def _not_taken_from_under_fares(driver: Driver, moment: dt.datetime, *, leaving: Vehicle) -> None:
    """Handing a driver a vehicle from `moment` ends their assignment elsewhere at `moment`:
    refused when that one began later, or when fares on it since then are theirs."""
    elsewhere = Assignment.objects.filter(
        driver=driver, substitute=False, ends_at__isnull=True
    ).exclude(vehicle=leaving)
    for other in elsewhere.select_related("vehicle"):
        if other.starts_at is not None and other.starts_at > moment:
            raise Conflict(
                f"{driver.driver_id} drives {other.vehicle.vehicle_id} only from "
                f"{timezone.localtime(other.starts_at):%Y-%m-%d %H:%M}; hand over after that"
            )
        if _fares_since(other.vehicle_id, moment, None, credited_to=driver):
            raise InvalidInput(
                f"{driver.driver_id} has fares on {other.vehicle.vehicle_id} since "
                f"{timezone.localtime(moment):%Y-%m-%d %H:%M}; hand over after them"
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
        if not vehicle.is_active:
            raise Conflict(f"{vehicle.vehicle_id} is not in service (inactive)")
        _not_over_posted_fares(vehicle, moment, None, driver)
        if driver is not None:
            _not_taken_from_under_fares(driver, moment, leaving=vehicle)
        previous = assignments.driver_on_duty(vehicle_pk=vehicle.pk, moment=moment)
        made = assignments.vehicle_assign(
            vehicle=vehicle, driver=driver, at=moment, actor=actor, reason=reason
        )
    lost = Driver.objects.filter(pk=previous).first() if previous else None
    events.event_record(
        title=events.EventTitle.VEHICLE_ASSIGNED,
        driver=driver or lost,
        actor=actor,
        message=f"{vehicle.vehicle_id} "
        + (f"assigned to {driver.driver_id}" if driver else "unassigned")
        + (f" (was {lost.driver_id})" if lost and lost != driver else "")
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
    if len(name.strip()) > Driver._meta.get_field("name").max_length:  # type: ignore[operator]
        raise InvalidInput("the name is too long")
    try:
        number = normalize_msisdn(mpesa_number)
    except InvalidPhoneNumber as exc:
        raise InvalidInput(str(exc)) from exc
    if daily_target is not None and daily_target < 0:
        raise InvalidInput("the daily target cannot be negative")
    if fare_percentage is not None and not 0 <= fare_percentage <= 100:
        raise InvalidInput("the fare percentage is between 0 and 100")
    for attempt in range(5):
        [driver_id] = driver_ids_next(count=1)
        try:
            with transaction.atomic():
                substitute = Driver.objects.create(
                    driver_id=driver_id,
                    name=name.strip(),
                    mpesa_number=number,
                    is_substitute=True,
                    daily_target=daily_target,
                    fare_percentage=fare_percentage,
                )
            break
        except IntegrityError:
            # Another driver took the same next id at the same moment: draw again.
            if attempt == 4:
                raise Conflict("could not draw a free driver id; try again") from None
    events.event_record(
        title=events.EventTitle.SUBSTITUTE_ADDED,
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
        if status.strip().title() == old:
            return vehicle  # nothing changes: no history row, no event
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
    with transaction.atomic():  # the period and its days off, or nothing
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


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def preferred_day_off_set_by(*, driver_id: str, weekday: int | None, actor: str) -> Driver:
    """The weekday the roster generator gives the driver off (0 = Monday … 6 = Sunday; None:
    none). Days already on the roster stay as they are."""
    if weekday is not None and not 0 <= weekday <= 6:
        raise InvalidInput("the preferred day off is a weekday, 0 (Monday) to 6 (Sunday)")
    driver = driver_get(ref=driver_id)
    old = driver.preferred_day_off
    if old == weekday:
        return driver
    Driver.objects.filter(pk=driver.pk).update(preferred_day_off=weekday, updated_at=timezone.now())
    driver.refresh_from_db()
    events.event_record(
        title=events.EventTitle.ROSTER_CHANGED,
        driver=driver,
        actor=actor,
        message=f"{driver.driver_id} preferred day off: {_weekday_name(old)} → "
        f"{_weekday_name(weekday)}",
        data={"preferred_day_off": weekday, "was": old},
    )
    return driver


def _weekday_name(weekday: int | None) -> str:
    return "none" if weekday is None else WEEKDAYS[weekday]
