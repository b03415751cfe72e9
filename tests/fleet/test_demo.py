"""`tuktuk demo`: a working demo fleet and admin, and running it again changes nothing."""

from __future__ import annotations

import io
import re
import stat
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from tuktuk.fleet.demo import ADMIN_PASSWORD_ENV, ADMIN_PASSWORD_FILE, DEMO_FLEET
from tuktuk.fleet.models import Driver, FleetSettings, Vehicle
from tuktuk.fleet.services import driver_id_is_valid

User = get_user_model()


@pytest.fixture
def demo_env(db: None, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings.DATA_DIR = tmp_path
    # The default hasher is slow on purpose; these tests hash the password a few times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    monkeypatch.delenv(ADMIN_PASSWORD_ENV, raising=False)
    return tmp_path


def run_demo() -> tuple[str, str | None]:
    out = io.StringIO()
    call_command("demo", stdout=out)
    text = out.getvalue()
    assert "Admin username: admin" in text
    password = re.search(r"^Admin password: (\S+)$", text, re.MULTILINE)
    return text, password.group(1) if password else None


def balances() -> list[tuple[Any, ...]]:
    return list(
        Driver.objects.order_by("driver_id").values_list(
            "driver_id", "current_balance", "left_to_target", "balance_day", "consecutive_misses"
        )
    )


def test_demo_creates_a_usable_fleet(demo_env: Path) -> None:
    text, password = run_demo()
    assert "7 vehicles (7 created), 7 drivers (7 created)" in text
    assert Vehicle.objects.count() == 7 and Driver.objects.count() == 7
    assert FleetSettings.objects.count() == 1
    for driver in Driver.objects.select_related("vehicle"):
        assert driver_id_is_valid(driver.driver_id)
        assert re.fullmatch(r"254[17]\d{8}", driver.mpesa_number)
        assert driver.vehicle is not None
        assert driver.vehicle.mpesa_account == driver.vehicle.mpesa_account.upper()
        assert driver.left_to_target == Decimal("3000.00")
    assert [d.driver_id for d in DEMO_FLEET] == [f"DRV-11200{n}" for n in range(1, 8)]
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password(password)


def test_running_demo_twice_creates_nothing_and_keeps_balances(demo_env: Path) -> None:
    _, first_password = run_demo()
    # As if payments had come in between the two runs.
    Driver.objects.filter(driver_id="DRV-112003").update(
        current_balance=Decimal("1250.00"), left_to_target=Decimal("1750.00")
    )
    Driver.objects.filter(driver_id="DRV-112005").update(current_balance=Decimal("-400.00"))
    before = balances()

    text, second_password = run_demo()

    assert "(0 created)" in text and "(7 created)" not in text
    assert second_password == first_password
    assert Vehicle.objects.count() == 7
    assert Driver.objects.count() == 7
    assert User.objects.filter(is_superuser=True).count() == 1
    assert balances() == before
    assert User.objects.get(username="admin").check_password(first_password)


def test_generated_password_is_kept_private_in_the_data_dir(demo_env: Path) -> None:
    _, password = run_demo()
    path = demo_env / ADMIN_PASSWORD_FILE
    assert path.read_text() == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert password and len(password) >= 16


def test_password_from_the_environment(demo_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, "from-the-env-123")
    _, password = run_demo()
    assert password == "from-the-env-123"
    assert User.objects.get(username="admin").check_password("from-the-env-123")
    assert not (demo_env / ADMIN_PASSWORD_FILE).exists()


def test_an_existing_admin_is_left_alone(demo_env: Path) -> None:
    User.objects.create_superuser(username="admin", email="", password="chosen-by-the-operator")
    text, password = run_demo()
    assert password is None
    assert "already exists and was left unchanged" in text
    assert User.objects.get(username="admin").check_password("chosen-by-the-operator")


def test_demo_next_to_an_imported_fleet(demo_env: Path) -> None:
    # An operator's vehicle already uses a demo account: the demo does not take it over.
    Vehicle.objects.create(vehicle_id="OWN-1", mpesa_account="TUK003")
    text, _ = run_demo()
    assert "TUK-003 was not created" in text
    assert Vehicle.objects.count() == 7  # six demo vehicles and the operator's
    assert Driver.objects.get(driver_id="DRV-112003").vehicle is None
    assert Vehicle.objects.get(vehicle_id="OWN-1").mpesa_account == "TUK003"
