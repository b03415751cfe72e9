"""`tuktuk import-legacy`: a generated export of the legacy app (hundreds of drivers, thousands
of transactions, deposits, rollover targets), as Frappe's Data Export and /api/resource write
it, imported through the command on the real database; it reconciles to zero afterwards, a bad
export imports nothing, and a second run changes nothing."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.support.clock import nairobi
from tests.support.factories import make_driver, make_operator, pay
from tests.support.invariants import assert_invariants
from tests.support.legacy_export import (
    LegacyFleet,
    data_export_csv,
    legacy_fleet,
    write_api_json,
    write_data_export,
)
from tuktuk.backoffice.frappe_export import export_read
from tuktuk.backoffice.legacy import reconcile_all_drivers_balances
from tuktuk.backoffice.legacy_import import IMPORTED_STATUS, LegacyImportRejected, legacy_import
from tuktuk.backoffice.roles import OUR_APPS
from tuktuk.core.models import Event, EventTitle
from tuktuk.core.money import format_ksh
from tuktuk.fleet.models import Assignment, Driver, FleetSettings, Vehicle, VehicleStatus
from tuktuk.ledger.deposit_book import deposit_balance
from tuktuk.ledger.models import (
    DepositAccount,
    DepositEntry,
    DepositEntryKind,
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionSource,
)
from tuktuk.ledger.services import PostingOutcome
from tuktuk.ledger.statement import driver_statement

pytestmark = pytest.mark.django_db

NOW = nairobi(2026, 3, 10, 10)
TODAY = NOW.date()


@pytest.fixture
def at_ten() -> Iterator[None]:
    """The import opens each driver's current business day: pinned at 10:00 Nairobi."""
    with time_machine.travel(NOW, tick=True):
        yield


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of every model of our apps."""
    rows = {}
    for label in OUR_APPS:
        for model in apps.get_app_config(label).get_models():
            if not model._meta.proxy:
                rows[model._meta.label] = list(model._default_manager.order_by("pk").values())
    return rows


def run(*paths: str | Path, dry_run: bool = False, user: str | None = None) -> list[str]:
    out = io.StringIO()
    argv = [str(p) for p in paths]
    if dry_run:
        argv.append("--dry-run")
    else:
        argv += ["--user", user or make_operator()]
    call_command("import_legacy", *argv, stdout=out)
    return out.getvalue().splitlines()


def assert_imported(fleet: LegacyFleet) -> None:
    for driver_id, opening in fleet.openings.items():
        driver = Driver.objects.get(driver_id=driver_id)
        assert driver.balance_day == TODAY, driver_id
        assert driver.current_balance == opening, (driver_id, driver.current_balance, opening)
        (entry,) = LedgerEntry.objects.filter(driver=driver)
        assert (entry.kind, entry.business_day, entry.amount) == (EntryKind.OPENING, TODAY, opening)
        fleet_settings = FleetSettings.load()
        target = driver.effective_target(fleet_settings)
        assert driver.left_to_target == max(Decimal(0), target - opening)
        if fleet.debts[driver_id]:
            assert "rollover debt" in entry.note and str(fleet.debts[driver_id]) in entry.note
            assert driver.daily_target is None  # back to the global target, debt in the balance
    for driver_id, balance in fleet.deposits.items():
        assert deposit_balance(driver_pk=Driver.objects.get(driver_id=driver_id).pk) == balance


def test_data_export_dry_run_then_import_reconciles_to_zero_and_again_changes_nothing(
    at_ten: None, tmp_path: Path
) -> None:
    fleet = legacy_fleet(today=TODAY, drivers=300, transactions=3000)
    export = write_data_export(fleet, tmp_path / "export")
    empty = snapshot()

    report = run(export, dry_run=True)
    assert snapshot() == empty  # a dry run writes nothing
    assert report[:6] == [
        "Settings: imported (operating_hours_start 05:30:00, bonus_amount 50.00).",
        "Vehicles: 305 created, 0 already in TukTuk Ledger.",
        "Drivers: 300 created, 3 substitutes created, 0 already in TukTuk Ledger.",
        f"Opening balances ({TODAY}): 303 entered, "
        f"{format_ksh(sum(fleet.openings.values(), Decimal(0)))} KSH in total, after "
        f"{format_ksh(sum(fleet.debts.values(), Decimal(0)))} KSH of rollover debt.",
        f"Deposits: {sum(len(d['deposit_transactions']) for d in fleet.drivers)} entries, "
        f"{format_ksh(sum(fleet.deposits.values(), Decimal(0)))} KSH held in total.",
        "Transactions: 3000 imported as history, 0 already known.",
    ]
    assert any("recorded more than once" in line and "TL00000000" in line for line in report)
    assert "Reconciliation: 303 imported driver(s) checked, 0 discrepancies." in report
    assert report[-1] == "Dry run: the export is valid; nothing was written."

    started = time.monotonic()
    real = run(export, user=make_operator("root"))
    elapsed = time.monotonic() - started
    assert real[:6] == report[:6]
    assert elapsed < 60, elapsed
    print(f"\nimport of 300 drivers, 3000 transactions: {elapsed:.2f} s")

    assert_imported(fleet)
    checked = reconcile_all_drivers_balances()
    assert checked["drivers_checked"] == 303 and checked["drivers_with_discrepancies"] == 0
    assert_invariants()
    assert Transaction.objects.count() == 3000
    history = Transaction.objects.get(trans_id="TL00000001")
    assert (history.status, history.source) == (IMPORTED_STATUS, TransactionSource.LEGACY)
    assert history.driver.driver_id == "DRV-112002" and history.vehicle.vehicle_id == "TUK-885-002"
    assert history.target_contribution == 0 and "share" in history.note
    vehicle = Vehicle.objects.get(vehicle_id="TUK-885-001")
    assert vehicle.mpesa_account == "TUK001"
    charging = next(v for v in fleet.vehicles if v["status"] == "Charging")
    assert Vehicle.objects.get(vehicle_id=charging["name"]).status == VehicleStatus.CHARGING
    # Who drives: every imported driver holds its vehicle from before history was kept.
    assert Assignment.objects.filter(starts_at=None, ends_at=None).count() == 300
    one = Driver.objects.get(driver_id="DRV-112009")
    assert one.fare_percentage == Decimal("60.00") and one.account_alias == "D112009"
    assert one.preferred_day_off == 0  # MONDAY
    assert Driver.objects.get(driver_id="DRV-112002").preferred_day_off is None  # No Preference
    sub = Driver.objects.get(driver_id="DRV-212001")
    assert sub.is_substitute and sub.vehicle is None and sub.daily_target == Decimal("2000.00")
    account = DepositAccount.objects.get(driver__driver_id="DRV-112004")
    assert account.allow_target_deduction and account.required
    (event,) = Event.objects.filter(title=EventTitle.FLEET_IMPORTED)
    assert event.actor == "root" and event.data["source"] == "tuktuk_management"

    # A fare paid to a legacy vehicle after the switch posts to its driver, on top of the
    # imported balance; a late duplicate of a legacy TransID credits nothing.
    driver = Driver.objects.get(driver_id="DRV-112003")
    before = driver.current_balance
    assert pay("NEWFARE001", "200", account="TUK003").outcome == PostingOutcome.POSTED
    late = pay("TL00000002", "150", account="TUK003")
    assert late.outcome == PostingOutcome.DUPLICATE
    driver.refresh_from_db()
    assert driver.current_balance == before + Decimal("100.00")
    statement = driver_statement(driver_id="DRV-112003", date_from=TODAY, date_to=TODAY)
    (day,) = statement.days
    assert (day.opening, day.closing) == (before, driver.current_balance)
    assert day.transactions_count == 1  # the new fare; the imported history is no credit
    assert reconcile_all_drivers_balances()["drivers_with_discrepancies"] == 0
    assert_invariants()

    # Again: nothing to import, nothing changes.
    settled = snapshot()
    again = run(export, user=make_operator("root"))
    assert snapshot() == settled
    assert again[-1] == "Nothing to import: all of it is in TukTuk Ledger already."
    assert "Transactions: 0 imported as history, 3000 already known." in again


def test_api_resource_json_imports_the_same(at_ten: None, tmp_path: Path) -> None:
    fleet = legacy_fleet(today=TODAY, drivers=40, transactions=300, seed=3)
    run(write_api_json(fleet, tmp_path / "json"))
    assert_imported(fleet)
    assert Transaction.objects.count() == 300
    assert reconcile_all_drivers_balances()["drivers_with_discrepancies"] == 0
    assert_invariants()


def test_a_bad_export_imports_nothing_and_lists_every_problem(at_ten: None, tmp_path: Path) -> None:
    fleet = legacy_fleet(today=TODAY, drivers=20, transactions=50, seed=5)
    fleet.drivers[2]["mpesa_number"] = "0712"  # not a number M-Pesa pays
    fleet.drivers[4]["deposit_transactions"][0]["transaction_type"] = "Top Up"
    fleet.drivers[4]["deposit_transactions"][0]["amount"] = -1000.0  # money in, negative
    fleet.drivers[6]["assigned_tuktuk"] = "TUK-885-404"  # no such vehicle
    fleet.transactions[7]["timestamp"] = "yesterday"
    export = write_data_export(fleet, tmp_path / "bad")
    operator = make_operator()
    empty = snapshot()
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"refused, nothing was imported \(4 problems\)"):
        call_command("import_legacy", str(export), "--user", operator, stderr=err)
    assert snapshot() == empty
    assert Driver.objects.count() == Vehicle.objects.count() == Transaction.objects.count() == 0
    assert not LedgerEntry.objects.exists() and not DepositEntry.objects.exists()
    problems = err.getvalue().splitlines()
    assert problems == [
        "TukTuk Driver.csv line 10, column mpesa_number: '0712' is not a Kenyan mobile number "
        "(expected +2547XXXXXXXX, 07XXXXXXXX, 2547XXXXXXXX or 01XXXXXXXX)",
        "TukTuk Driver.csv line 13, column amount: a Top Up of -1000.00 KSH: it must be more "
        "than 0",
        "TukTuk Driver.csv line 16, column assigned_tuktuk: no vehicle TUK-885-404 in the export "
        "or in TukTuk Ledger",
        "TukTuk Transaction.csv line 15, column timestamp: 'yesterday' is not a date and time "
        "(YYYY-MM-DD HH:MM:SS)",
    ]


def test_the_dry_run_of_a_bad_export_says_the_same(at_ten: None, tmp_path: Path) -> None:
    fleet = legacy_fleet(today=TODAY, drivers=5, transactions=5, seed=9)
    fleet.vehicles[1]["mpesa_account"] = fleet.vehicles[0]["mpesa_account"]
    export = write_api_json(fleet, tmp_path / "dup")
    with pytest.raises(LegacyImportRejected) as refused:
        legacy_import(read=export_read([str(export)]), dry_run=True)
    assert [str(p) for p in refused.value.problems] == [
        "TukTuk Vehicle.json document 2 (TUK-885-002), column mpesa_account: 'TUK001' is "
        "already the account of TUK-885-001"
    ]
    assert not Vehicle.objects.exists()


def test_existing_fleet_is_left_alone_and_a_fresh_driver_gets_the_legacy_balance(
    at_ten: None, tmp_path: Path
) -> None:
    """A driver already used in TukTuk Ledger keeps its ledger; one onboarded but never paid
    gets its legacy balance; settings someone changed are kept, and the report says so."""
    used = make_driver(1)  # DRV-112001, TUK-001: paid already
    pay("OURS0001", "300", account="TUK001")
    fresh = make_driver(2)  # DRV-112002: onboarded, never paid
    FleetSettings.objects.update(global_daily_target=Decimal("3500.00"))
    fleet = legacy_fleet(today=TODAY, drivers=4, transactions=20, seed=1)
    for driver in fleet.drivers[:2]:
        driver["assigned_tuktuk"] = ""  # they drive TUK-001/TUK-002 here already
    fleet.vehicles = fleet.vehicles[2:]
    report = run(write_api_json(fleet, tmp_path / "x"))
    assert report[0] == "Settings: kept: they were changed in TukTuk Ledger already."
    assert any("global_daily_target 3000.00" in line for line in report)
    assert "Left as they are (they have a ledger already): DRV-112001" in report
    used.refresh_from_db()
    assert used.current_balance == Decimal("150.00")
    fresh.refresh_from_db()
    assert fresh.current_balance == fleet.openings["DRV-112002"]
    assert fresh.vehicle.vehicle_id == "TUK-002"  # its identity stays ours
    assert reconcile_all_drivers_balances()["drivers_with_discrepancies"] == 0
    assert_invariants()


def test_a_deposit_history_that_does_not_add_up_is_explained_by_an_adjustment(
    at_ten: None, tmp_path: Path
) -> None:
    fleet = legacy_fleet(today=TODAY, drivers=2, transactions=2, seed=2)
    fleet.drivers[0]["current_deposit_balance"] += 250.0
    report = run(write_api_json(fleet, tmp_path / "d"))
    driver = Driver.objects.get(driver_id="DRV-112001")
    last = DepositEntry.objects.filter(driver=driver).order_by("-seq").first()
    assert last is not None and last.kind == DepositEntryKind.ADJUSTMENT
    assert last.amount == Decimal("250.00")
    assert deposit_balance(driver_pk=driver.pk) == fleet.deposits["DRV-112001"] + 250
    assert any("an Adjustment of 250 KSH carries the difference" in line for line in report)


def test_csv_with_labels_as_the_list_view_exports_it(at_ten: None, tmp_path: Path) -> None:
    """The list view's Export: one header row of labels, child rows on lines of their own."""
    fleet = legacy_fleet(today=TODAY, drivers=3, transactions=0, seed=4)
    for substitute in fleet.substitutes:  # not in this export
        fleet.openings.pop("DRV-" + substitute["name"].removeprefix("SUB-"))
    directory = tmp_path / "labels"
    directory.mkdir()
    header = [
        "ID",
        "Driver Name",
        "Mpesa Phone Number",
        "Assigned TukTuk",
        "Current Target Balance",
        "Individual Daily Target",
        "Is Rollover Target",
        "Current Deposit Balance",
        "ID (Deposit Transactions)",
        "Transaction Type (Deposit Transactions)",
        "Amount (Deposit Transactions)",
    ]
    lines = [",".join(f'"{h}"' for h in header)]
    for driver in fleet.drivers:
        for index, row in enumerate(driver["deposit_transactions"]):
            own = (
                [
                    driver["name"],
                    driver["driver_name"],
                    driver["mpesa_number"],
                    driver["assigned_tuktuk"],
                    str(driver["current_balance"]),
                    str(driver["daily_target"]),
                    str(driver["is_rollover_target"]),
                    str(driver["current_deposit_balance"]),
                ]
                if index == 0
                else [""] * 8
            )
            lines.append(",".join([*own, row["name"], row["transaction_type"], str(row["amount"])]))
    (directory / "tuktuk_driver.csv").write_text("\n".join(lines) + "\n")
    (directory / "TukTuk Vehicle.csv").write_text(
        data_export_csv(
            "TukTuk Vehicle",
            [("name", "ID", "Data"), ("mpesa_account", "Mpesa Account", "Data")],
            fleet.vehicles,
        )
    )
    run(directory)
    assert_imported(fleet)


def test_json_of_one_document_with_its_child_table(at_ten: None, tmp_path: Path) -> None:
    """`GET /api/resource/TukTuk Driver/DRV-112001` answers the document with its children."""
    fleet = legacy_fleet(today=TODAY, drivers=1, transactions=0, seed=6)
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"data": {**fleet.drivers[0], "assigned_tuktuk": None}}))
    run(path)
    driver = Driver.objects.get(driver_id="DRV-112001")
    assert deposit_balance(driver_pk=driver.pk) == fleet.deposits["DRV-112001"]
    assert driver.current_balance == fleet.openings["DRV-112001"]


def test_the_business_day_follows_the_clock(tmp_path: Path) -> None:
    """Imported at 00:30 the business day is the new one (the legacy reset ran at midnight)."""
    fleet = legacy_fleet(today=TODAY, drivers=1, transactions=0, seed=8)
    with time_machine.travel(nairobi(2026, 3, 11, 0, 30), tick=False):
        run(write_api_json(fleet, tmp_path / "late"))
    assert Driver.objects.get(driver_id="DRV-112001").balance_day == dt.date(2026, 3, 11)
