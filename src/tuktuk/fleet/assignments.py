"""Who drives which vehicle, over time; vehicle status; days off.

The assignment rows are the truth: a fare is credited to the driver on duty at its M-Pesa time
(`driver_on_duty`). `Driver.vehicle` is kept as the driver's current regular vehicle (what
lists and the import show), and `assignments_sync` makes the history follow it: whoever sets a
driver's vehicle (the import, the demo, an operator's assignment) calls it, at the moment the
change takes effect. The checks that need the ledger (no reassignment in the past over fares
already posted) are in `ledger.duty`, which calls these under the vehicle's row lock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from tuktuk.core.errors import Conflict, InvalidInput
from tuktuk.fleet.models import (
    OPERATOR_STATUSES,
    Assignment,
    DayOff,
    Driver,
    RosterPeriod,
    Vehicle,
    VehicleStatus,
    VehicleStatusChange,
)


def _covering(moment: dt.datetime) -> Q:
    return (Q(starts_at__isnull=True) | Q(starts_at__lte=moment)) & (
        Q(ends_at__isnull=True) | Q(ends_at__gt=moment)
    )


def _overlapping(start: dt.datetime | None, end: dt.datetime | None) -> Q:
    """Assignments overlapping [start, end) (None: unbounded)."""
    overlap = Q()
    if end is not None:
        overlap &= Q(starts_at__isnull=True) | Q(starts_at__lt=end)
    if start is not None:
        overlap &= Q(ends_at__isnull=True) | Q(ends_at__gt=start)
    return overlap


@dataclass(frozen=True)
class _Span:
    driver_pk: int
    substitute: bool
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None

    def covers(self, moment: dt.datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= moment) and (
            self.ends_at is None or self.ends_at > moment
        )


class DutyRoster:
    """Who drives some vehicles over a span of time, read in one query: the rule of
    `driver_on_duty` for many payments at once (the posting engine's batch)."""

    def __init__(self, *, vehicle_pks: Collection[int], start: dt.datetime, end: dt.datetime):
        self.spans: dict[int, list[_Span]] = {}
        rows = Assignment.objects.filter(
            _overlapping(start, end + dt.timedelta(microseconds=1)),
            vehicle_id__any_of=set(vehicle_pks),
            driver__is_active=True,
        ).values_list("vehicle_id", "driver_id", "substitute", "starts_at", "ends_at")
        for vehicle_pk, driver_pk, substitute, starts_at, ends_at in rows:
            span = _Span(driver_pk, substitute, starts_at, ends_at)
            self.spans.setdefault(vehicle_pk, []).append(span)

    def on_duty(self, *, vehicle_pk: int, moment: dt.datetime) -> int | None:
        """A substitute covering the vehicle at `moment` first, then the latest-starting
        regular assignment covering it (a start of None is the earliest)."""
        covering = [span for span in self.spans.get(vehicle_pk, []) if span.covers(moment)]
        if not covering:
            return None
        earliest = dt.datetime.min.replace(tzinfo=dt.UTC)
        best = max(covering, key=lambda span: (span.substitute, span.starts_at or earliest))
        return best.driver_pk


def driver_on_duty(*, vehicle_pk: int, moment: dt.datetime) -> int | None:
    """The active driver driving the vehicle at `moment`: a substitute covering it, else the
    regular driver. One query."""
    roster = DutyRoster(vehicle_pks=[vehicle_pk], start=moment, end=moment)
    return roster.on_duty(vehicle_pk=vehicle_pk, moment=moment)


def drivers_vehicles_lock(*, driver_pks: Collection[int]) -> None:
    """Lock the vehicles of these drivers (by primary key), before the caller locks or updates
    their driver rows twice. Why: when a transaction updates a driver row a second time,
    PostgreSQL re-checks the row's vehicle foreign key (FOR KEY SHARE on the vehicle); a fare
    holding that vehicle (FOR UPDATE) while waiting for the driver would close a cycle. Vehicles
    before drivers, as everywhere (a driver paying the fleet, the day close's catch-up)."""
    vehicle_pks = Driver.objects.filter(
        pk__any_of=set(driver_pks), vehicle__isnull=False
    ).values_list("vehicle_id", flat=True)
    list(
        Vehicle.objects.select_for_update()
        .filter(pk__any_of=set(vehicle_pks))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def drivers_with_vehicle(
    *, driver_pks: Collection[int], start: dt.datetime, end: dt.datetime
) -> set[int]:
    """Those of the drivers who held a vehicle (regular or substitute) at some moment of
    [start, end). One query."""
    return set(
        Assignment.objects.filter(_overlapping(start, end), driver_id__any_of=set(driver_pks))
        .values_list("driver_id", flat=True)
        .distinct()
    )


def drivers_off(*, driver_pks: Collection[int], day: dt.date) -> set[int]:
    """Those of the drivers with a day off on `day`. One query."""
    return set(
        DayOff.objects.filter(driver_id__any_of=set(driver_pks), day=day).values_list(
            "driver_id", flat=True
        )
    )


def assignments_sync(*, driver_pks: Collection[int], at: dt.datetime | None = None) -> None:
    """Make the open regular assignments agree with `Driver.vehicle` for these drivers, from
    `at` (default now). A vehicle that never had an assignment gets one with no start (the
    driver has held it since before history was kept), so an imported fleet credits its
    drivers for any M-Pesa time."""
    moment = at or timezone.now()
    for driver in Driver.objects.filter(pk__in=list(driver_pks)).order_by("pk"):
        current = Assignment.objects.filter(
            driver=driver, substitute=False, ends_at__isnull=True
        ).first()
        if current is not None and current.vehicle_id == driver.vehicle_id:
            continue
        if current is not None:
            _end(current, moment)
        if driver.vehicle_id is None:
            continue
        held = Assignment.objects.filter(vehicle_id=driver.vehicle_id, substitute=False)
        for other in held.filter(ends_at__isnull=True):
            _end(other, moment)
        Assignment.objects.create(
            vehicle_id=driver.vehicle_id,
            driver=driver,
            starts_at=moment if held.exists() else None,
        )


def _end(assignment: Assignment, moment: dt.datetime, actor: str = "") -> None:
    if assignment.starts_at is not None and assignment.starts_at >= moment:
        # Never started: it is withdrawn rather than given an empty span.
        Assignment.objects.filter(pk=assignment.pk).delete()
        return
    Assignment.objects.filter(pk=assignment.pk).update(ends_at=moment, ended_by=actor)


def vehicle_assign(
    *, vehicle: Vehicle, driver: Driver | None, at: dt.datetime, actor: str, reason: str
) -> Assignment | None:
    """Hand the vehicle to `driver` (None: unassign) from `at`, ending whatever regular
    assignment the vehicle and the driver had. The caller holds the vehicle's row lock."""
    if driver is not None and driver.is_substitute:
        raise InvalidInput(f"{driver.driver_id} is a substitute: cover a vehicle with dates")
    if driver is not None and not driver.is_active:
        raise Conflict(f"{driver.driver_id} is {driver.status}")
    later = Assignment.objects.filter(vehicle=vehicle, substitute=False, starts_at__gt=at)
    if later.exists():
        raise Conflict(f"{vehicle.vehicle_id} has an assignment starting after {at}")
    for open_one in Assignment.objects.filter(vehicle=vehicle, substitute=False, ends_at=None):
        _end(open_one, at, actor)
    Driver.objects.filter(vehicle=vehicle).update(vehicle=None, updated_at=timezone.now())
    if driver is None:
        return None
    for open_one in Assignment.objects.filter(driver=driver, substitute=False, ends_at=None):
        _end(open_one, at, actor)
    Driver.objects.filter(pk=driver.pk).update(vehicle=vehicle, updated_at=timezone.now())
    return Assignment.objects.create(
        vehicle=vehicle, driver=driver, starts_at=at, reason=reason, created_by=actor
    )


def substitute_cover(
    *,
    vehicle: Vehicle,
    substitute: Driver,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    actor: str,
    reason: str,
) -> Assignment:
    """The substitute drives the vehicle over [starts_at, ends_at). The caller holds the
    vehicle's row lock."""
    if not substitute.is_substitute:
        raise InvalidInput(f"{substitute.driver_id} is not a substitute driver")
    if not substitute.is_active:
        raise Conflict(f"{substitute.driver_id} is {substitute.status}")
    if ends_at <= starts_at:
        raise InvalidInput("the cover must end after it starts")
    span = _overlapping(starts_at, ends_at)
    clash = Assignment.objects.filter(span, substitute=True).filter(
        Q(vehicle=vehicle) | Q(driver=substitute)
    )
    if clash.exists():
        other = clash.select_related("vehicle", "driver").first()
        raise Conflict(f"overlaps {other}")
    return Assignment.objects.create(
        vehicle=vehicle,
        driver=substitute,
        substitute=True,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        created_by=actor,
    )


def vehicle_status_set(*, vehicle: Vehicle, status: str, actor: str, reason: str) -> Vehicle:
    if status not in OPERATOR_STATUSES:
        raise InvalidInput(
            f"status {status!r} is not one an operator sets: {', '.join(OPERATOR_STATUSES)} "
            "(Assigned and Subbed follow the assignments)"
        )
    old = vehicle.status
    Vehicle.objects.filter(pk=vehicle.pk).update(status=status)
    VehicleStatusChange.objects.create(
        vehicle=vehicle, old_status=old, new_status=status, reason=reason, changed_by=actor
    )
    vehicle.refresh_from_db()
    return vehicle


def vehicle_status_now(*, vehicle: Vehicle, at: dt.datetime | None = None) -> str:
    """The legacy status: the operator's when out of service, else Subbed / Assigned /
    Available from the assignments at `at`."""
    if vehicle.status != VehicleStatus.AVAILABLE:
        return vehicle.status
    moment = at or timezone.now()
    kinds = set(
        Assignment.objects.filter(
            _covering(moment), vehicle=vehicle, driver__is_active=True
        ).values_list("substitute", flat=True)
    )
    if True in kinds:
        return VehicleStatus.SUBBED
    if False in kinds:
        return VehicleStatus.ASSIGNED
    return VehicleStatus.AVAILABLE


def roster_generate(*, starts_on: dt.date, ends_on: dt.date, actor: str) -> RosterPeriod:
    """A roster period with a day off on each driver's preferred weekday (days already off
    stay as they are)."""
    if ends_on < starts_on:
        raise InvalidInput("the roster must end on or after its first day")
    if (ends_on - starts_on).days > 366:
        raise InvalidInput("a roster covers at most 366 days")
    period = RosterPeriod.objects.create(starts_on=starts_on, ends_on=ends_on, created_by=actor)
    preferred = dict(
        Driver.objects.filter(is_active=True, preferred_day_off__isnull=False).values_list(
            "pk", "preferred_day_off"
        )
    )
    taken = set(
        DayOff.objects.filter(day__range=(starts_on, ends_on)).values_list("driver_id", "day")
    )
    day = starts_on
    rows = []
    while day <= ends_on:
        for driver_pk, weekday in preferred.items():
            if day.weekday() == weekday and (driver_pk, day) not in taken:
                rows.append(
                    DayOff(
                        driver_id=driver_pk,
                        day=day,
                        period=period,
                        reason="preferred day off",
                        created_by=actor,
                    )
                )
        day += dt.timedelta(days=1)
    DayOff.objects.bulk_create(rows)
    return period


def day_off_set(*, driver: Driver, day: dt.date, off: bool, actor: str, reason: str) -> bool:
    """Mark (or unmark) a day off; True when something changed."""
    if not off:
        return bool(DayOff.objects.filter(driver=driver, day=day).delete()[0])
    _, created = DayOff.objects.get_or_create(
        driver=driver, day=day, defaults={"reason": reason[:255], "created_by": actor}
    )
    return created
