"""Drivers with portal logins, for the portal's tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.support.factories import make_driver, pay
from tuktuk.backoffice.portal.models import DriverAccount, ProblemReport
from tuktuk.backoffice.portal.services import driver_pin_set, problem_report_open
from tuktuk.fleet.models import Driver

PIN = "4812"


@dataclass
class PortalDriver:
    driver: Driver
    phone: str  # as a driver types it
    pin: str
    fares: list[str]
    report: ProblemReport


def portal_driver(number: int, *, fares: int = 2, pin: str = PIN) -> PortalDriver:
    driver = make_driver(number)
    trans_ids = []
    for n in range(fares):
        trans_id = f"F{number:02d}X{n:04d}"
        pay(trans_id, str(100 * (n + 2)), account=f"TUK{number:03d}", msisdn="254711222333")
        trans_ids.append(trans_id)
    driver_pin_set(driver_id=driver.driver_id, pin=pin, actor="root")
    # A PIN the driver has chosen (an operator's must be changed at the first login).
    DriverAccount.objects.filter(driver=driver).update(must_change_pin=False)
    report = problem_report_open(driver=driver, note=f"secret note of driver {number}")
    driver.refresh_from_db()
    return PortalDriver(driver, f"07{number:08d}", pin, trans_ids, report)


@pytest.fixture
def two_drivers(business_hours: None, transactional_db: None) -> tuple[PortalDriver, PortalDriver]:
    return portal_driver(1), portal_driver(2, pin="5937")
