"""`tuktuk import-fleet` as operators run it: through Django's command and the console script."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.support import live_server
from tests.support.factories import make_operator
from tuktuk.fleet.models import Driver, Vehicle

HEADER = "driver_id,driver_name,mpesa_number,vehicle_id,mpesa_account,daily_target,fare_percentage"
GOOD = f"""{HEADER}
DRV-112001,Wanjiku Kamau,0712000001,TUK-001,TUK001,3000,50
,Brian Otieno,+254712000002,TUK-002,tuk002,,
"""
BAD = f"""{HEADER}
DRV-112001,Wanjiku Kamau,0712000001,TUK-001,TUK001,3000,50
,Brian Otieno,0712,TUK-002,TUK001,,
,Achieng,0712000003,TUK-003,TUK003,-5,
"""
BAD_PROBLEMS = [
    "line 3, column mpesa_number: '0712' is not a Kenyan mobile number",
    "line 3, column mpesa_account: 'TUK001' is already on line 2",
    "line 4, column daily_target: '-5' must be more than 0",
]


def as_root() -> tuple[str, str]:
    return ("--user", make_operator())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.csv"
    path.write_text(text)
    return path


def test_command_imports_and_prints_a_summary(db: None, tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("import_fleet", str(write(tmp_path, GOOD)), *as_root(), stdout=out)
    assert out.getvalue().splitlines() == [
        "Drivers: 2 created, 0 updated, 0 unchanged.",
        "Vehicles: 2 created, 0 updated, 0 unchanged.",
    ]
    out = io.StringIO()
    call_command("import_fleet", str(write(tmp_path, GOOD)), *as_root(), stdout=out)
    assert out.getvalue().splitlines()[0] == "Drivers: 0 created, 0 updated, 2 unchanged."
    assert Driver.objects.count() == 2


def test_command_refuses_a_bad_file_with_one_line_per_problem(db: None, tmp_path: Path) -> None:
    err = io.StringIO()
    with pytest.raises(CommandError, match="refused, nothing was imported \\(3 problems\\)"):
        call_command("import_fleet", str(write(tmp_path, BAD)), *as_root(), stderr=err)
    lines = err.getvalue().splitlines()
    assert len(lines) == 3
    for line, expected in zip(lines, BAD_PROBLEMS, strict=True):
        assert line.startswith(expected)
    assert Driver.objects.count() == 0 and Vehicle.objects.count() == 0


def test_command_dry_run(db: None, tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("import_fleet", str(write(tmp_path, GOOD)), "--dry-run", stdout=out)
    assert "Dry run" in out.getvalue()
    assert Driver.objects.count() == 0


def test_command_missing_file(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_fleet", str(tmp_path / "nope.csv"), *as_root())


def tuktuk(*args: str) -> subprocess.CompletedProcess[str]:
    env = live_server.child_env()
    script = Path(sys.executable).parent / "tuktuk"
    return subprocess.run(
        [str(script), *args],
        env=env,
        cwd=live_server.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_console_script_imports(transactional_db: None, tmp_path: Path) -> None:
    done = tuktuk("import-fleet", str(write(tmp_path, GOOD)), *as_root())
    assert done.returncode == 0, done.stderr
    assert "Drivers: 2 created" in done.stdout
    assert sorted(Driver.objects.values_list("driver_id", "mpesa_number")) == [
        ("DRV-112001", "254712000001"),
        ("DRV-112002", "254712000002"),
    ]
    assert Vehicle.objects.get(vehicle_id="TUK-002").mpesa_account == "TUK002"


def test_console_script_exits_1_and_imports_nothing(transactional_db: None, tmp_path: Path) -> None:
    done = tuktuk("import-fleet", str(write(tmp_path, BAD)), *as_root())
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    for expected in BAD_PROBLEMS:
        assert any(line.startswith(expected) for line in lines), done.stderr
    assert lines[-1].startswith("CommandError:")
    assert Driver.objects.count() == 0 and Vehicle.objects.count() == 0
