"""The demo fleet: seven tuktuks, their drivers and an admin user, for a first look.

Running it again creates nothing new and changes nothing that exists: a demo driver that has
been edited or has taken payments since is left exactly as it is.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from tuktuk.fleet.balance import driver_left_to_target_refresh
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.fleet.services import (
    driver_upsert,
    vehicle_get_or_create,
)

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD_ENV = "TUKTUK_DEMO_ADMIN_PASSWORD"  # noqa: S105 - a variable name
ADMIN_PASSWORD_FILE = "demo_admin_password"  # noqa: S105 - a file name


@dataclass(frozen=True)
class DemoDriver:
    driver_id: str
    name: str
    mpesa_number: str
    vehicle_id: str
    mpesa_account: str


DEMO_FLEET = (
    DemoDriver("DRV-112001", "Wanjiku Kamau", "0700100001", "TUK-001", "TUK001"),
    DemoDriver("DRV-112002", "Brian Otieno", "0700100002", "TUK-002", "TUK002"),
    DemoDriver("DRV-112003", "Achieng Odhiambo", "0700100003", "TUK-003", "TUK003"),
    DemoDriver("DRV-112004", "Mwangi Njoroge", "0700100004", "TUK-004", "TUK004"),
    DemoDriver("DRV-112005", "Faith Chebet", "0700100005", "TUK-005", "TUK005"),
    DemoDriver("DRV-112006", "Hassan Mohamed", "0110100006", "TUK-006", "TUK006"),
    DemoDriver("DRV-112007", "Kevin Kiprop", "0110100007", "TUK-007", "TUK007"),
)


@dataclass
class DemoResult:
    vehicles_created: list[str] = field(default_factory=list)
    drivers_created: list[str] = field(default_factory=list)
    admin_created: bool = False
    admin_username: str = ADMIN_USERNAME
    # None when an existing admin user has another password, which the demo leaves alone.
    admin_password: str | None = None
    password_source: str = ""
    notes: list[str] = field(default_factory=list)


def demo_admin_password() -> tuple[str, str]:
    """The demo admin's password and where it comes from: the environment or the data dir.

    Generated once and kept (mode 0600) so every run prints credentials that still work.
    """
    from_env = os.environ.get(ADMIN_PASSWORD_ENV, "").strip()
    if from_env:
        return from_env, ADMIN_PASSWORD_ENV
    path = Path(settings.DATA_DIR) / ADMIN_PASSWORD_FILE
    try:
        return path.read_text().strip(), str(path)
    except FileNotFoundError:
        pass
    password = secrets.token_urlsafe(12)
    # O_EXCL: when two runs start together, one writes and the other reads its password.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip(), str(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(password)
    return password, str(path)


def demo_fleet_create() -> DemoResult:
    password, source = demo_admin_password()
    result = DemoResult(password_source=source)
    with transaction.atomic():
        FleetSettings.load()
        for demo in DEMO_FLEET:
            vehicle, created = vehicle_get_or_create(
                vehicle_id=demo.vehicle_id, mpesa_account=demo.mpesa_account
            )
            if created:
                result.vehicles_created.append(demo.vehicle_id)
            if vehicle is None:
                result.notes.append(
                    f"{demo.vehicle_id} was not created: account {demo.mpesa_account} belongs "
                    "to another vehicle."
                )
            if Driver.objects.filter(driver_id=demo.driver_id).exists():
                continue
            if vehicle is not None and Driver.objects.filter(vehicle=vehicle).exists():
                result.notes.append(
                    f"{demo.driver_id} was created without a vehicle: {demo.vehicle_id} "
                    "already has a driver."
                )
                vehicle = None
            driver_upsert(
                driver_id=demo.driver_id,
                name=demo.name,
                mpesa_number=demo.mpesa_number,
                vehicle=vehicle,
            )
            result.drivers_created.append(demo.driver_id)
        driver_left_to_target_refresh(driver_ids=result.drivers_created)

        user_model = get_user_model()
        admin = user_model.objects.filter(username=ADMIN_USERNAME).first()
        if admin is None:
            user_model.objects.create_superuser(
                username=ADMIN_USERNAME, email="", password=password
            )
            result.admin_created = True
            result.admin_password = password
        elif admin.is_superuser and admin.is_active and admin.check_password(password):
            result.admin_password = password
        else:
            # Someone set this account up (or changed its password) on purpose.
            result.notes.append(
                f"User {ADMIN_USERNAME!r} already exists and was left unchanged; the demo "
                "password does not apply to it."
            )
    return result
