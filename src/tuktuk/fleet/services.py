"""Writes for the fleet: vehicles, drivers, the demo fleet."""

from __future__ import annotations

import re
from decimal import Decimal

from django.db import transaction

from tuktuk.fleet.assignments import assignments_sync
from tuktuk.fleet.balance import driver_left_to_target_refresh
from tuktuk.fleet.models import Driver, Vehicle
from tuktuk.fleet.phone import normalize_msisdn

FIRST_DRIVER_NUMBER = 112001
_DRIVER_ID = re.compile(r"^DRV-(\d{6})$")


def driver_id_is_valid(value: str) -> bool:
    return bool(_DRIVER_ID.match(value))


def driver_ids_next(*, count: int, taken: set[str] | None = None) -> list[str]:
    """The next `count` free DRV-NNNNNN ids after the highest one in use (and in `taken`)."""
    numbers = [
        int(m.group(1))
        for value in [*Driver.objects.values_list("driver_id", flat=True), *(taken or set())]
        if (m := _DRIVER_ID.match(value))
    ]
    start = max(numbers, default=FIRST_DRIVER_NUMBER - 1) + 1
    return [f"DRV-{number:06d}" for number in range(start, start + count)]


def vehicle_upsert(*, vehicle_id: str, mpesa_account: str) -> Vehicle:
    vehicle, created = Vehicle.objects.get_or_create(
        vehicle_id=vehicle_id.strip(),
        defaults={"mpesa_account": Vehicle.canonical_account(mpesa_account)},
    )
    account = Vehicle.canonical_account(mpesa_account)
    if not created and vehicle.mpesa_account != account:
        vehicle.mpesa_account = account
        vehicle.save(update_fields=["mpesa_account"])
    return vehicle


def driver_upsert(
    *,
    driver_id: str,
    name: str,
    mpesa_number: str,
    vehicle: Vehicle | None,
    daily_target: Decimal | None = None,
    fare_percentage: Decimal | None = None,
) -> tuple[Driver, bool]:
    """Create or update a driver's identity fields. The balance is never touched here."""
    fields = {
        "name": name.strip(),
        "mpesa_number": normalize_msisdn(mpesa_number),
        "vehicle": vehicle,
        "daily_target": daily_target,
        "fare_percentage": fare_percentage,
    }
    with transaction.atomic():
        if vehicle is not None:
            # One driver per vehicle: whoever held it gives it up.
            Driver.objects.filter(vehicle=vehicle).exclude(driver_id=driver_id).update(vehicle=None)
        driver = Driver.objects.filter(driver_id=driver_id).first()
        created = driver is None
        if driver is None:
            driver = Driver.objects.create(driver_id=driver_id, **fields)
            changed = ["daily_target"]
        else:
            changed = [key for key, value in fields.items() if getattr(driver, key) != value]
            for key in changed:
                setattr(driver, key, fields[key])
            if changed:
                driver.save(update_fields=[*changed, "updated_at"])
        if "daily_target" in changed:
            driver_left_to_target_refresh(driver_ids=[driver_id])
            driver.refresh_from_db(fields=["left_to_target"])
        if "vehicle" in changed or created:
            assignments_sync(driver_pks=[driver.pk])
    return driver, created


def vehicle_get_or_create(*, vehicle_id: str, mpesa_account: str) -> tuple[Vehicle | None, bool]:
    """The vehicle with this id, created when missing; None when another vehicle has the account.

    Unlike vehicle_upsert, an existing vehicle is left exactly as it is.
    """
    vehicle = Vehicle.objects.filter(vehicle_id=vehicle_id.strip()).first()
    if vehicle is not None:
        return vehicle, False
    account = Vehicle.canonical_account(mpesa_account)
    if Vehicle.objects.filter(mpesa_account=account).exists():
        return None, False
    return Vehicle.objects.create(vehicle_id=vehicle_id.strip(), mpesa_account=account), True
