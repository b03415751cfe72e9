"""Test data made through the same services operators use."""

from __future__ import annotations

from decimal import Decimal

from tuktuk.fleet.models import Driver
from tuktuk.fleet.services import driver_upsert, vehicle_upsert


def make_driver(
    number: int = 1,
    *,
    daily_target: Decimal | None = None,
    fare_percentage: Decimal | None = None,
    **overrides: object,
) -> Driver:
    vehicle = vehicle_upsert(vehicle_id=f"TUK-{number:03d}", mpesa_account=f"TUK{number:03d}")
    driver, _ = driver_upsert(
        driver_id=f"DRV-{112000 + number}",
        name=f"Driver {number}",
        mpesa_number=f"07{number:08d}",
        vehicle=vehicle,
        daily_target=daily_target,
        fare_percentage=fare_percentage,
    )
    if overrides:
        Driver.objects.filter(pk=driver.pk).update(**overrides)
        driver.refresh_from_db()
    return driver


def make_fleet(size: int = 7) -> list[Driver]:
    return [make_driver(number) for number in range(1, size + 1)]
