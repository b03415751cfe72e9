"""Test data made through the same services operators use."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection

from tuktuk.fleet.models import Driver
from tuktuk.fleet.services import driver_upsert, vehicle_upsert
from tuktuk.ledger.services import IncomingPayment, PostingResult, payment_post


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


def pay(
    trans_id: str, amount: str | int, account: str = "TUK001", msisdn: str = "254799999999"
) -> PostingResult:
    """A C2B payment through the posting service (as a confirmation would post it)."""
    return payment_post(
        payment=IncomingPayment(
            trans_id=trans_id,
            amount=Decimal(amount),
            account_reference=account,
            payer_msisdn=msisdn,
        )
    )


def edit_balance_by_sql(driver: Driver | int, delta: str) -> None:
    """Change a cached balance around the ORM, as the legacy manual resets did."""
    pk = driver if isinstance(driver, int) else driver.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE fleet_driver SET current_balance = current_balance + %s WHERE id = %s",
            [Decimal(delta), pk],
        )


def make_operator(username: str = "root") -> str:
    """A superuser to pass as --user to the operator commands; returns its username."""
    from django.contrib.auth.models import User

    if not User.objects.filter(username=username).exists():
        User.objects.create_superuser(username, f"{username}@example.com", "pw-for-tests")
    return username
