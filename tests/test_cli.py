"""The `tuktuk` console script itself, run as operators run it: from some other directory.

These tests start the real executable next to the test interpreter (.venv/bin/tuktuk) with a
clean environment (no TUKTUK_* variables), so the data dir is ./var of a temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class

from tuktuk.cli import summary

TUKTUK = Path(sys.executable).parent / "tuktuk"
EXPECTED_REFUSAL = (
    "tuktuk: no data dir at {path} (TUKTUK_DATA_DIR); run 'tuktuk migrate' to create one, "
    "or cd to the project\n"
)


def tuktuk(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TUKTUK_", "DJANGO_"))}
    return subprocess.run(
        [str(TUKTUK), *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def everything_in(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize(
    "args",
    [
        ("reconcile", "--all"),
        ("worker", "--once"),
        ("payouts", "list"),
        ("close-day",),
        ("demo",),
        ("serve", "--port", "1"),
        ("createsuperuser", "--noinput"),
    ],
)
def test_refuses_without_a_data_dir_and_creates_nothing(tmp_path: Path, args: tuple[str]) -> None:
    done = tuktuk(tmp_path, *args)
    assert done.returncode == 2
    assert done.stderr == EXPECTED_REFUSAL.format(path=tmp_path / "var")
    assert done.stdout == ""
    assert everything_in(tmp_path) == []


def test_the_refusal_names_the_data_dir_from_the_environment(tmp_path: Path) -> None:
    elsewhere = tmp_path / "ledger-data"
    done = tuktuk(tmp_path, "reconcile", "--all", TUKTUK_DATA_DIR=str(elsewhere))
    assert done.returncode == 2
    assert done.stderr == EXPECTED_REFUSAL.format(path=elsewhere)
    assert everything_in(tmp_path) == []


def test_external_database_still_needs_the_data_dir_for_its_secrets(tmp_path: Path) -> None:
    """A fresh secret key and callback token would not match the server's (B2C results posted
    to the worker's ResultURL would 404), so they are not generated silently either."""
    url = "postgres://nobody@127.0.0.1:1/nothing"
    done = tuktuk(tmp_path, "worker", "--once", TUKTUK_DATABASE_URL=url)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"tuktuk: no data dir at {tmp_path / 'var'} (TUKTUK_DATA_DIR)")
    assert "TUKTUK_SECRET_KEY and TUKTUK_CALLBACK_TOKEN" in done.stderr
    assert everything_in(tmp_path) == []

    # With both secrets in the environment nothing we need lives in the data dir any more.
    secrets = {"TUKTUK_SECRET_KEY": "k" * 50, "TUKTUK_CALLBACK_TOKEN": "t" * 32}
    done = tuktuk(tmp_path, "check", TUKTUK_DATABASE_URL=url, **secrets)
    assert done.returncode == 0, done.stderr
    assert everything_in(tmp_path) == ["var", "var/static"]


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("not a directory")
    done = tuktuk(tmp_path, "migrate")
    assert done.returncode == 2
    assert done.stderr == (
        f"tuktuk: the data dir {tmp_path / 'var'} (TUKTUK_DATA_DIR) is not a directory\n"
    )


def test_migrate_creates_the_data_dir_and_says_so(tmp_path: Path) -> None:
    done = tuktuk(tmp_path, "migrate", "--noinput")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"tuktuk: creating the data dir {tmp_path / 'var'}")
    assert {"tuktuk.sqlite3", "secret_key", "callback_token"} <= set(
        everything_in(tmp_path / "var")
    )

    done = tuktuk(tmp_path, "reconcile", "--all")
    assert done.returncode == 0, done.stderr
    assert "0 drivers checked" in done.stdout
    assert "creating" not in done.stderr


def our_commands() -> dict[str, str]:
    """Every command of a tuktuk.* app as the help lists it: name -> one-line description."""
    return {
        name.replace("_", "-"): summary(load_command_class(app, name).help)
        for name, app in get_commands().items()
        if isinstance(app, str) and app.startswith("tuktuk.")
    }


def test_help_lists_our_commands_first_with_descriptions(tmp_path: Path) -> None:
    done = tuktuk(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"Data dir: {tmp_path / 'var'}" in done.stdout
    assert "missing: 'tuktuk migrate' creates it" in done.stdout

    ours = our_commands()
    assert {"reconcile", "close-day", "worker", "payouts", "import-fleet"} <= set(ours)
    start = lines.index("TukTuk Ledger commands:")
    listed = lines[start + 1 : start + 1 + len(ours)]
    assert [line.split()[0] for line in listed] == sorted(ours)
    for line in listed:
        name, description = line.split(maxsplit=1)
        assert description == ours[name] and description
    described = dict(line.split(maxsplit=1) for line in listed)
    assert described["reconcile"].startswith("Check driver balances against the ledger")
    assert described["close-day"].startswith("Close business days")

    django = lines.index("Django commands:")
    assert django > start + len(ours)
    assert lines.index("    migrate") > django
    assert lines.index("[auth]") > django
    # Our apps are not listed a second time among Django's.
    assert "[ledger]" not in lines and "    close_day" not in lines

    # Looking at the help created nothing.
    assert everything_in(tmp_path) == []


def test_no_arguments_and_help_print_the_same_list(tmp_path: Path) -> None:
    outputs = {tuktuk(tmp_path, *args).stdout for args in [(), ("help",), ("--help",), ("-h",)]}
    assert len(outputs) == 1
    assert "TukTuk Ledger commands:" in outputs.pop()
    assert everything_in(tmp_path) == []


@pytest.mark.parametrize("args", [("help", "close-day"), ("close-day", "--help")])
def test_help_for_one_command(tmp_path: Path, args: tuple[str, str]) -> None:
    done = tuktuk(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: tuktuk close-day")
    assert "--date" in done.stdout
    assert "Close business days" in done.stdout
    assert everything_in(tmp_path) == []


def test_unknown_command(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    done = tuktuk(tmp_path, "close-dya")
    assert done.returncode == 1
    assert "Unknown command: 'close-dya'. Did you mean close_day?" in done.stderr
