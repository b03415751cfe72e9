"""The one writer of current_balance / left_to_target: left = max(0, target − balance)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.factories import make_driver
from tuktuk.fleet.balance import (
    driver_balance_credit,
    driver_balance_set,
    driver_left_to_target_refresh,
)
from tuktuk.fleet.models import Assignment, Driver

pytestmark = pytest.mark.django_db

amounts = st.decimals(min_value=-5000, max_value=5000, places=2, allow_nan=False)


@given(start=amounts, credit=amounts)
def test_credit_moves_the_balance_and_left_to_target_follows(
    start: Decimal, credit: Decimal
) -> None:
    driver = make_driver(1)
    driver_balance_set(driver_pk=driver.pk, target=Decimal(3000), balance=start)
    driver_balance_credit(driver_pk=driver.pk, target=Decimal(3000), amount=credit)
    driver.refresh_from_db()
    assert driver.current_balance == start + credit
    assert driver.left_to_target == max(Decimal(0), Decimal(3000) - (start + credit))
    Assignment.objects.all().delete()
    Driver.objects.all().delete()


def test_refresh_after_a_target_change_keeps_the_balance() -> None:
    driver = make_driver(1)
    driver_balance_set(driver_pk=driver.pk, target=Decimal(3000), balance=Decimal("1200.50"))
    Driver.objects.filter(pk=driver.pk).update(daily_target=Decimal(1000))
    driver_left_to_target_refresh(driver_ids=[driver.driver_id])
    driver.refresh_from_db()
    assert (driver.current_balance, driver.left_to_target) == (Decimal("1200.50"), Decimal(0))
    Driver.objects.filter(pk=driver.pk).update(daily_target=None)  # back to the global 3000
    driver_left_to_target_refresh(driver_ids=[driver.driver_id])
    driver.refresh_from_db()
    assert driver.left_to_target == Decimal("1799.50")
