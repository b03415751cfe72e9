"""The fleet's rules hold in the database itself: writes that bypass the ORM's save() are refused.

Every refusal happens inside its own atomic block: PostgreSQL aborts the whole transaction on an
error, so without a savepoint the next statement of the test would fail for the wrong reason.
Each test first makes a valid write the same way, so a refusal is the constraint's doing and
not a broken statement.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from tuktuk.fleet.models import Driver, FleetSettings, Vehicle

# Timestamps filled by raw_insert come from the pinned clock, never the hour the suite runs at.
pytestmark = pytest.mark.usefixtures("business_hours")


def raw_insert(model: type[models.Model], **values: Any) -> None:
    """INSERT one row with plain SQL: no save(), no field cleaning, model defaults filled in."""
    columns: list[str] = []
    params: list[Any] = []
    for field in model._meta.concrete_fields:
        if field.attname in values:
            value = values[field.attname]
        elif field.auto_created:
            continue
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = timezone.now()
        else:
            value = field.get_default()
        columns.append(connection.ops.quote_name(field.column))
        params.append(field.get_db_prep_save(value, connection))
    table = connection.ops.quote_name(model._meta.db_table)
    placeholders = ", ".join(["%s"] * len(columns))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", params
        )


def refused(model: type[models.Model], **values: Any) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        raw_insert(model, **values)


def update_refused(queryset: models.QuerySet[Any], **values: Any) -> None:
    # QuerySet.update() writes straight to the table: Vehicle.save()'s canonicalisation and
    # any Python-side checks are skipped.
    with pytest.raises(IntegrityError), transaction.atomic():
        queryset.update(**values)


@pytest.fixture
def vehicle(db: None) -> Vehicle:
    raw_insert(Vehicle, vehicle_id="TUK-001", mpesa_account="TUK001")
    return Vehicle.objects.get(vehicle_id="TUK-001")


@pytest.fixture
def driver(vehicle: Vehicle) -> Driver:
    raw_insert(
        Driver,
        driver_id="DRV-112001",
        name="Wanjiku Kamau",
        mpesa_number="254712000001",
        vehicle_id=vehicle.pk,
    )
    return Driver.objects.get(driver_id="DRV-112001")


def driver_values(**overrides: Any) -> dict[str, Any]:
    return {"driver_id": "DRV-112002", "name": "Brian", "mpesa_number": "254712000002", **overrides}


# Not "drv-112002": the check's startswith is a LIKE, case-insensitive on SQLite and MariaDB.
@pytest.mark.parametrize("bad", ["XYZ-112002", "DRV-12", "112002", "DRV112002"])
def test_driver_id_must_look_like_drv_nnnnnn(driver: Driver, bad: str) -> None:
    refused(Driver, **driver_values(driver_id=bad))
    update_refused(Driver.objects.filter(pk=driver.pk), driver_id=bad)
    raw_insert(Driver, **driver_values())


@pytest.mark.parametrize("bad", ["0712000002", "255712000002", "2547120000", "254212000002", ""])
def test_mpesa_number_must_be_canonical(driver: Driver, bad: str) -> None:
    refused(Driver, **driver_values(mpesa_number=bad))
    update_refused(Driver.objects.filter(pk=driver.pk), mpesa_number=bad)
    raw_insert(Driver, **driver_values(mpesa_number="254112000002"))


@pytest.mark.parametrize("bad", [Decimal("100.01"), Decimal("150"), Decimal("-0.01")])
def test_fare_percentage_between_0_and_100(driver: Driver, bad: Decimal) -> None:
    refused(Driver, **driver_values(fare_percentage=bad))
    update_refused(Driver.objects.filter(pk=driver.pk), fare_percentage=bad)
    Driver.objects.filter(pk=driver.pk).update(fare_percentage=Decimal("100"))


def test_left_to_target_never_negative(driver: Driver) -> None:
    update_refused(Driver.objects.filter(pk=driver.pk), left_to_target=Decimal("-0.01"))
    refused(Driver, **driver_values(left_to_target=Decimal("-500")))
    Driver.objects.filter(pk=driver.pk).update(left_to_target=Decimal("0"))


def test_daily_target_never_negative(driver: Driver) -> None:
    update_refused(Driver.objects.filter(pk=driver.pk), daily_target=Decimal("-1"))


@pytest.mark.parametrize("variant", ["tuk001", "Tuk001", "TUK001", "tUK001"])
def test_account_differing_only_in_case_is_refused(vehicle: Vehicle, variant: str) -> None:
    # SQLite and PostgreSQL: the canonical-form check refuses lower case outright. MariaDB
    # compares with a case-insensitive collation, so there its check passes and the unique
    # index refuses the duplicate instead. Either way the second account never exists.
    refused(Vehicle, vehicle_id="TUK-002", mpesa_account=variant)
    raw_insert(Vehicle, vehicle_id="TUK-002", mpesa_account="TUK002")
    update_refused(Vehicle.objects.filter(vehicle_id="TUK-002"), mpesa_account=variant)


@pytest.mark.parametrize("bad", [" TUK002", "   ", ""])
def test_account_not_blank_and_trimmed(vehicle: Vehicle, bad: str) -> None:
    refused(Vehicle, vehicle_id="TUK-002", mpesa_account=bad)


def test_lone_lowercase_account_is_refused(vehicle: Vehicle) -> None:
    if connection.vendor == "mysql":
        pytest.skip(
            "MariaDB's case-insensitive collation makes UPPER(x) = x true for 'tuk002'; "
            "the unique index still refuses any case variant of an existing account"
        )
    refused(Vehicle, vehicle_id="TUK-002", mpesa_account="tuk002")


def test_two_drivers_cannot_share_a_vehicle(driver: Driver, vehicle: Vehicle) -> None:
    refused(Driver, **driver_values(vehicle_id=vehicle.pk))
    raw_insert(Driver, **driver_values())
    update_refused(Driver.objects.filter(driver_id="DRV-112002"), vehicle_id=vehicle.pk)


def test_driver_ids_are_unique(driver: Driver) -> None:
    refused(Driver, **driver_values(driver_id="DRV-112001"))


def test_only_one_fleet_settings_row(db: None) -> None:
    FleetSettings.load()
    refused(FleetSettings, id=2)
    refused(FleetSettings, id=1)
    update_refused(FleetSettings.objects.all(), id=2)
    assert list(FleetSettings.objects.values_list("id", flat=True)) == [1]


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("global_fare_percentage", Decimal("100.5")),
        ("global_daily_target", Decimal("0")),
        ("bonus_amount", Decimal("-1")),
    ],
)
def test_fleet_settings_values(db: None, field: str, bad: Decimal) -> None:
    FleetSettings.load()
    update_refused(FleetSettings.objects.all(), **{field: bad})
