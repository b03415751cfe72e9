"""Reads for the JSON API and the CLI: drivers with their vehicle, the event log, deposits,
deduction proposals and refunds, vehicles, assignments, substitutes and the roster, each shaped
once (the CLI's --json prints the API's shape)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import (
    F,
    QuerySet,
    prefetch_related_objects,
)
from django.utils import timezone

from tuktuk.core.errors import InvalidInput, NotFound
from tuktuk.core.models import Event
from tuktuk.fleet.assignments import driver_on_duty, vehicle_status_now
from tuktuk.fleet.models import (
    Assignment,
    DayOff,
    Driver,
    FleetSettings,
    RosterPeriod,
    Vehicle,
    VehicleStatusChange,
)
from tuktuk.fleet.selectors import driver_get, driver_id_canonical
from tuktuk.ledger.day_close import current_business_day
from tuktuk.ledger.deposit_book import deposit_balance_subquery
from tuktuk.ledger.deposits import deduction_proposals, deposit_show
from tuktuk.ledger.models import DeductionProposal, DepositEntry, DepositRefund

DRIVER_FIELDS = (
    "driver_id",
    "name",
    "mpesa_number",
    "vehicle_id",
    "mpesa_account",
    "current_balance",
    "left_to_target",
    "balance_day",
    "consecutive_misses",
    "flagged_for_review",
    "is_active",
    "status",
    "deposit_balance",
)


@dataclass(frozen=True)
class Page:
    count: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


_COMPUTED = ("vehicle_id", "mpesa_account", "status", "deposit_balance")


def driver_status(row: Mapping[str, Any]) -> str:
    """Driver.status (the model's rule) for a values() row with is_active, terminated_at and
    archived_at."""
    return Driver(
        is_active=row["is_active"],
        terminated_at=row["terminated_at"],
        archived_at=row["archived_at"],
    ).status


def _driver_rows(drivers: QuerySet[Driver]) -> QuerySet[Driver, dict[str, Any]]:
    # values() with the vehicle columns joined and the deposit balance as a subquery: one
    # query per page, no lookup per row.
    return drivers.values(
        *[f for f in DRIVER_FIELDS if f not in _COMPUTED],
        "terminated_at",
        "archived_at",
        vehicle_code=F("vehicle__vehicle_id"),
        account=F("vehicle__mpesa_account"),
        deposit_now=deposit_balance_subquery(),
    )


def _driver_dict(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    # Driver.vehicle_id is the foreign key column; the API's vehicle_id is the vehicle's code.
    row["vehicle_id"] = row.pop("vehicle_code")
    row["mpesa_account"] = row.pop("account")
    row["deposit_balance"] = row.pop("deposit_now")
    row["status"] = driver_status(row)
    return {field: row[field] for field in DRIVER_FIELDS}


def driver_list(*, limit: int, offset: int) -> Page:
    drivers = Driver.objects.order_by("driver_id")
    rows = _driver_rows(drivers)[offset : offset + limit]
    return Page(
        count=drivers.count(),
        limit=limit,
        offset=offset,
        items=[_driver_dict(row) for row in rows],
    )


def driver_detail(*, driver_id: str) -> dict[str, Any]:
    row = _driver_rows(Driver.objects.filter(driver_id=driver_id_canonical(driver_id))).first()
    if row is None:
        raise NotFound(f"no driver {driver_id!r}")
    return _driver_dict(row)


def event_list(
    *,
    limit: int,
    offset: int,
    level: str | None = None,
    title: str | None = None,
    driver_id: str | None = None,
) -> Page:
    """Newest first (Event's default ordering), optionally filtered."""
    events = Event.objects.all()
    if level:
        events = events.filter(level=level)
    if title:
        events = events.filter(title__icontains=title.strip())
    if driver_id:
        events = events.filter(driver=driver_id_canonical(driver_id))
    rows = events.order_by("-created_at", "-id").values(
        "id", "created_at", "level", "title", "message", "driver", "data", "actor"
    )[offset : offset + limit]
    items = [{**row, "driver": row["driver"] or None} for row in rows]
    return Page(count=events.count(), limit=limit, offset=offset, items=items)


def database_ping() -> str:
    """A round trip to the database; returns its vendor, raises when it is unreachable."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


# --- deposits, deduction proposals, refunds --------------------------------------------------


def deposit_entry_dict(entry: DepositEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "created_at": entry.created_at,
        "kind": entry.kind,
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "reference": entry.reference,
        "actor": entry.actor,
        "trans_id": entry.transaction.trans_id if entry.transaction is not None else None,
    }


def deposit_detail(*, driver_id: str) -> dict[str, Any]:
    """A driver's deposit: settings, balance and every entry in order (ledger.deposit_show)."""
    view = deposit_show(driver_id=driver_id)
    prefetch_related_objects(view.entries, "transaction")  # one query, not one per entry
    return {
        "driver_id": view.driver_id,
        "name": view.name,
        "status": view.status,
        "required": view.required,
        "initial_amount": view.initial_amount,
        "allow_target_deduction": view.allow_target_deduction,
        "balance": view.balance,
        "entries": [deposit_entry_dict(entry) for entry in view.entries],
    }


def proposal_dict(proposal: DeductionProposal) -> dict[str, Any]:
    return {
        "id": proposal.pk,
        "driver_id": proposal.driver.driver_id,
        "driver_name": proposal.driver.name,
        "business_day": proposal.business_day,
        "shortfall": proposal.shortfall,
        "amount": proposal.amount,
        "approved_amount": proposal.approved_amount,
        "state": proposal.state,
        "decided_by": proposal.decided_by,
        "decided_at": proposal.decided_at,
        "reason": proposal.reason,
        "created_at": proposal.created_at,
    }


def proposal_list(*, state: str | None, limit: int, offset: int) -> Page:
    """Deduction proposals in `state` (None: every state), oldest missed day first."""
    proposals = deduction_proposals(state=state).order_by("business_day", "pk")
    return Page(
        count=proposals.count(),
        limit=limit,
        offset=offset,
        items=[proposal_dict(p) for p in proposals[offset : offset + limit]],
    )


def refund_dict(refund: DepositRefund) -> dict[str, Any]:
    payout = getattr(refund, "payout", None)  # the B2C transfer, once approved
    return {
        "id": refund.pk,
        "driver_id": refund.driver.driver_id,
        "driver_name": refund.driver.name,
        "state": refund.state,
        "deposit_balance": refund.deposit_balance,
        "target_debt": refund.target_debt,
        "adjustments_debt": refund.adjustments_debt,
        "amount": refund.amount,
        "requested_by": refund.requested_by,
        "reason": refund.reason,
        "created_at": refund.created_at,
        "decided_by": refund.decided_by,
        "decided_at": refund.decided_at,
        "payout_id": payout.pk if payout else None,
        "payout_state": payout.state if payout else None,
    }


def refund_paid(refund: DepositRefund) -> str:
    """What an approved refund pays, in words (CLI and admin messages)."""
    if refund.amount > 0:
        return f"{refund.amount} KSH queued for M-Pesa"
    return "nothing left to pay back"


def refund_get(*, refund_id: int) -> DepositRefund:
    refund = DepositRefund.objects.select_related("driver", "payout").filter(pk=refund_id).first()
    if refund is None:
        raise NotFound(f"no refund {refund_id}")
    return refund


def refund_list(*, state: str | None, limit: int, offset: int) -> Page:
    """Deposit refunds in `state` (None: every state), newest first."""
    refunds = DepositRefund.objects.select_related("driver", "payout").order_by("-pk")
    if state:
        refunds = refunds.filter(state=state)
    return Page(
        count=refunds.count(),
        limit=limit,
        offset=offset,
        items=[refund_dict(r) for r in refunds[offset : offset + limit]],
    )


# --- who drives today: vehicles, assignments, substitutes, the roster ----------------------


def vehicle_get(*, vehicle_id: str) -> Vehicle:
    """By its id, as the services find it (ledger.duty.vehicle_locked)."""
    vehicle = Vehicle.objects.filter(vehicle_id=vehicle_id.strip()).first()
    if vehicle is None:
        raise NotFound(f"no vehicle {vehicle_id!r}")
    return vehicle


def _vehicle_dicts(vehicles: list[Vehicle], *, at: dt.datetime) -> list[dict[str, Any]]:
    # The rules are fleet.assignments' own (two queries a vehicle), then one for the drivers.
    on_duty = {v.pk: driver_on_duty(vehicle_pk=v.pk, moment=at) for v in vehicles}
    drivers = Driver.objects.in_bulk([pk for pk in on_duty.values() if pk is not None])
    rows = []
    for vehicle in vehicles:
        driver = drivers.get(on_duty[vehicle.pk]) if on_duty[vehicle.pk] else None
        rows.append(
            {
                "vehicle_id": vehicle.vehicle_id,
                "mpesa_account": vehicle.mpesa_account,
                "is_active": vehicle.is_active,
                "status": vehicle.status,
                "status_now": vehicle_status_now(vehicle=vehicle, at=at),
                "driver_id": driver.driver_id if driver else None,
                "driver_name": driver.name if driver else None,
                "substitute": bool(driver and driver.is_substitute),
            }
        )
    return rows


def vehicle_list(*, limit: int, offset: int) -> Page:
    """Every vehicle with its legacy status and the driver on duty, now."""
    vehicles = Vehicle.objects.order_by("vehicle_id")
    return Page(
        count=vehicles.count(),
        limit=limit,
        offset=offset,
        items=_vehicle_dicts(list(vehicles[offset : offset + limit]), at=timezone.now()),
    )


def vehicle_detail(*, vehicle_id: str) -> dict[str, Any]:
    return _vehicle_dicts([vehicle_get(vehicle_id=vehicle_id)], at=timezone.now())[0]


def vehicle_status_history(*, vehicle_id: str) -> list[dict[str, Any]]:
    """The operator's status changes, newest first."""
    changes = VehicleStatusChange.objects.filter(vehicle=vehicle_get(vehicle_id=vehicle_id))
    return [
        {
            "changed_at": change.changed_at,
            "old_status": change.old_status,
            "new_status": change.new_status,
            "reason": change.reason,
            "changed_by": change.changed_by,
        }
        for change in changes.order_by("-changed_at", "-pk")
    ]


def assignment_dict(assignment: Assignment) -> dict[str, Any]:
    return {
        "id": assignment.pk,
        "vehicle_id": assignment.vehicle.vehicle_id,
        "driver_id": assignment.driver.driver_id,
        "driver_name": assignment.driver.name,
        "substitute": assignment.substitute,
        "starts_at": assignment.starts_at,
        "ends_at": assignment.ends_at,
        "reason": assignment.reason,
        "created_by": assignment.created_by,
        "ended_by": assignment.ended_by,
        "created_at": assignment.created_at,
    }


def assignment_list(
    *,
    limit: int,
    offset: int,
    vehicle_id: str | None = None,
    driver_id: str | None = None,
) -> Page:
    """Who drove what from when to when, oldest first (no start: since before history was
    kept), for one vehicle or one driver or all."""
    rows = Assignment.objects.select_related("vehicle", "driver")
    if vehicle_id is not None:
        rows = rows.filter(vehicle=vehicle_get(vehicle_id=vehicle_id))
    if driver_id is not None:
        rows = rows.filter(driver=driver_get(ref=driver_id))
    rows = rows.order_by(F("starts_at").asc(nulls_first=True), "pk")
    return Page(
        count=rows.count(),
        limit=limit,
        offset=offset,
        items=[assignment_dict(a) for a in rows[offset : offset + limit]],
    )


def substitute_dict(substitute: Driver, covers: list[Assignment]) -> dict[str, Any]:
    return {
        "driver_id": substitute.driver_id,
        "name": substitute.name,
        "mpesa_number": substitute.mpesa_number,
        "daily_target": substitute.daily_target,
        "fare_percentage": substitute.fare_percentage,
        "status": substitute.status,
        "covers": [assignment_dict(cover) for cover in covers],
    }


def substitute_list(*, limit: int, offset: int) -> Page:
    """Substitute drivers with their covers not yet over (running or to come)."""
    substitutes = Driver.objects.filter(is_substitute=True).order_by("driver_id")
    page = list(substitutes[offset : offset + limit])
    covers: dict[int, list[Assignment]] = {s.pk: [] for s in page}
    for cover in (
        Assignment.objects.filter(driver__in=page, substitute=True, ends_at__gt=timezone.now())
        .select_related("vehicle", "driver")
        .order_by("starts_at", "pk")
    ):
        covers[cover.driver_id].append(cover)
    return Page(
        count=substitutes.count(),
        limit=limit,
        offset=offset,
        items=[substitute_dict(s, covers[s.pk]) for s in page],
    )


# A roster is read over a stretch of days; as long as one may be generated.
ROSTER_MAX_DAYS = 366
ROSTER_DEFAULT_DAYS = 14


def roster_show(*, date_from: dt.date | None, date_to: dt.date | None) -> dict[str, Any]:
    """The days off from..to (default: two weeks from today's business day) and the roster
    periods overlapping them."""
    first = date_from or current_business_day(FleetSettings.load())
    last = date_to or first + dt.timedelta(days=ROSTER_DEFAULT_DAYS - 1)
    if last < first:
        raise InvalidInput("the roster to show must end on or after its first day")
    if (last - first).days >= ROSTER_MAX_DAYS:
        raise InvalidInput(f"show at most {ROSTER_MAX_DAYS} days of the roster at a time")
    days_off = (
        DayOff.objects.filter(day__range=(first, last))
        .select_related("driver")
        .order_by("day", "driver__driver_id")
    )
    periods = RosterPeriod.objects.filter(starts_on__lte=last, ends_on__gte=first).order_by(
        "starts_on", "pk"
    )
    return {
        "from": first,
        "to": last,
        "days_off": [day_off_dict(day_off) for day_off in days_off],
        "periods": [roster_period_dict(period) for period in periods],
    }


def day_off_dict(day_off: DayOff) -> dict[str, Any]:
    return {
        "day": day_off.day,
        "driver_id": day_off.driver.driver_id,
        "driver_name": day_off.driver.name,
        "reason": day_off.reason,
        "period_id": day_off.period_id,
        "created_by": day_off.created_by,
    }


def roster_period_dict(period: RosterPeriod) -> dict[str, Any]:
    return {
        "id": period.pk,
        "from": period.starts_on,
        "to": period.ends_on,
        "created_by": period.created_by,
        "created_at": period.created_at,
    }
