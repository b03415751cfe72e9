"""Reads for the JSON API: drivers with their vehicle, and the event log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F, QuerySet

from tuktuk.core.errors import NotFound
from tuktuk.core.models import Event
from tuktuk.fleet.models import Driver
from tuktuk.fleet.selectors import driver_id_canonical

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
)


@dataclass(frozen=True)
class Page:
    count: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


def _driver_rows(drivers: QuerySet[Driver]) -> QuerySet[Driver, dict[str, Any]]:
    # values() with the vehicle columns joined: one query per page, no lookup per row.
    return drivers.values(
        *[f for f in DRIVER_FIELDS if f not in ("vehicle_id", "mpesa_account")],
        vehicle_code=F("vehicle__vehicle_id"),
        account=F("vehicle__mpesa_account"),
    )


def _driver_dict(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    # Driver.vehicle_id is the foreign key column; the API's vehicle_id is the vehicle's code.
    row["vehicle_id"] = row.pop("vehicle_code")
    row["mpesa_account"] = row.pop("account")
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
