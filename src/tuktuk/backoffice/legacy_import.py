"""`tuktuk import-legacy`: a fleet's data from the legacy Frappe app (`tuktuk_management`),
read from its data export (backoffice.frappe_export), checked whole, then written in one
database transaction: all or nothing, and a second run changes nothing.

What comes over, and how:

- **TukTuk Settings**: the global target, fare percentage, target sharing, instant payouts,
  operating hours and bonus, when TukTuk Ledger's settings are still the defaults (or already
  the same); settings someone has changed since are kept, and the report says how they differ;
- **TukTuk Vehicle**: the vehicle (its id is the legacy document name) with its M-Pesa account
  and an operator status (Charging, Maintenance, Offline; Assigned and Subbed follow the
  drivers);
- **TukTuk Driver**: id, name, M-Pesa number, vehicle, overrides (target, fare percentage,
  target sharing, instant payout), consecutive misses, preferred day off, the legacy Sunny ID as
  the driver's own account (alias), exit date (terminated); **Substitute Driver** likewise as a
  substitute (`SUB-212001` becomes `DRV-212001`), without a vehicle;
- **balances**: the driver's open business day becomes today's, with one `opening` ledger
  entry equal to the imported balance: today's balance, less the debt the legacy app carried as
  a *rollover target* (its daily target raised above the global one by the shortfall), both
  named in the entry's note. `current_balance`/`left_to_target` follow through fleet.balance,
  so reconciliation is exact from the first day;
- **deposits**: the settings, and the history of Driver Deposit Transaction rows in their
  order, with their amounts, through the deposit book; when the history does not add up to the
  legacy balance, one `Adjustment` entry carries the difference, and the report says so;
- **TukTuk Transaction**: every past transaction as history, source `legacy` and status
  IMPORTED_STATUS, with its TransID: it credits nothing (the balance came in as the opening
  entry), but a late duplicate delivery of that TransID is recognised as one.

Only what is not there yet is written: an existing vehicle or driver is left as it is (a
driver without any ledger entry yet still gets the opening balance and deposits), a TransID
already known is skipped. So the same export imported twice writes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django import forms
from django.db import DatabaseError, transaction
from django.utils import timezone

from tuktuk.backoffice.frappe_export import (
    DEPOSIT,
    DRIVER,
    SETTINGS,
    SUBSTITUTE,
    TRANSACTION,
    VEHICLE,
    ExportRead,
    Record,
)
from tuktuk.backoffice.legacy_forms import (
    LEGACY_TRANSACTION_TYPES,
    SUBSTITUTE_ID,
    DepositForm,
    DriverForm,
    SettingsForm,
    SubstituteForm,
    TransactionForm,
    VehicleForm,
)
from tuktuk.core import events
from tuktuk.core.clock import aware
from tuktuk.core.money import ZERO, format_ksh, money
from tuktuk.fleet.assignments import assignments_sync
from tuktuk.fleet.balance import driver_balance_set
from tuktuk.fleet.models import Driver, FleetSettings, Override, Vehicle, VehicleStatus
from tuktuk.ledger.business_day import business_day_of
from tuktuk.ledger.day_close import TERMINATION_REVIEW_MISSES, current_business_day
from tuktuk.ledger.deposit_book import deposit_entry_add
from tuktuk.ledger.models import (
    DEPOSIT_CREDIT_KINDS,
    DEPOSIT_DEBIT_KINDS,
    DepositAccount,
    DepositEntry,
    DepositEntryKind,
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionSource,
    TransactionStatus,
)
from tuktuk.ledger.selectors import balance_snapshots

SOURCE_APP = "tuktuk_management"
# History that credits nothing. Every check of a payment's money (reconciliation, statements,
# the invariants) reads Completed transactions only.
IMPORTED_STATUS: str = TransactionStatus.IMPORTED
_BATCH = 500
# How many names a warning lists before "and N more".
_SHOWN = 5


@dataclass(frozen=True)
class Problem:
    where: str
    column: str | None
    reason: str

    def __str__(self) -> str:
        column = f", column {self.column}" if self.column else ""
        return f"{self.where}{column}: {self.reason}"


class LegacyImportRejected(Exception):
    """The export was refused as a whole; nothing was written."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# --- the records, checked -------------------------------------------------------------------


@dataclass(frozen=True)
class LegacySettings:
    values: dict[str, Any]  # FleetSettings field -> value, for the fields the export has


@dataclass(frozen=True)
class LegacyVehicle:
    where: str
    vehicle_id: str
    account: str
    status: str


@dataclass(frozen=True)
class LegacyDeposit:
    where: str
    kind: DepositEntryKind
    amount: Decimal
    reference: str


@dataclass
class LegacyDriver:
    where: str
    legacy_id: str
    driver_id: str
    name: str
    mpesa_number: str
    is_substitute: bool
    vehicle_id: str | None
    active: bool
    terminated_on: dt.date | None
    alias: str | None
    target_sharing: str
    instant_payout: str
    daily_target: Decimal | None  # the driver's own target; None: the fleet's
    fare_percentage: Decimal | None
    misses: int
    preferred_day_off: int | None
    balance: Decimal  # today's balance in the legacy app
    rollover_debt: Decimal  # carried as a rollover target there
    rollover_target: Decimal | None
    deposit_required: bool
    deposit_initial: Decimal
    allow_deduction: bool
    deposit_balance: Decimal | None = None  # the legacy balance; None: not in the export
    deposits: list[LegacyDeposit] = field(default_factory=list)

    @property
    def opening(self) -> Decimal:
        return self.balance - self.rollover_debt

    def opening_note(self) -> str:
        what = "today's target balance" if self.is_substitute else "today's balance"
        note = f"opening balance from {SOURCE_APP} ({self.legacy_id}): {what} {self.balance} KSH"
        if self.rollover_debt:
            note += (
                f", less a rollover debt of {self.rollover_debt} KSH (its rollover target of "
                f"{self.rollover_target} KSH over the global target)"
            )
        return note[:255]


@dataclass(frozen=True)
class LegacyTransaction:
    where: str
    trans_id: str
    transaction_type: str
    vehicle_id: str | None
    driver_ref: str | None
    amount: Decimal
    moment: dt.datetime
    payer: str
    note: str


@dataclass
class Checked:
    settings: LegacySettings | None = None
    vehicles: list[LegacyVehicle] = field(default_factory=list)
    drivers: list[LegacyDriver] = field(default_factory=list)
    transactions: list[LegacyTransaction] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Every vehicle and driver the export names, refused ones too (their problem is said once).
    vehicle_names: set[str] = field(default_factory=set)
    driver_names: set[str] = field(default_factory=set)


def _form_problems(record: Record, form: forms.Form) -> list[Problem]:
    return [
        Problem(record.where, None if column == "__all__" else column, str(errors[0]))
        for column, errors in form.errors.items()
    ]


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _cents(value: Decimal, *, what: str, warnings: list[str]) -> Decimal:
    rounded = money(value)
    if rounded != value:
        warnings.append(f"{what}: {value} rounded to {rounded} KSH")
    return rounded


def _check_settings(records: list[Record], checked: Checked) -> None:
    if not records:
        return
    if len(records) > 1:
        checked.problems.append(
            Problem(records[1].where, None, "TukTuk Settings is a single document: one only")
        )
        return
    form = SettingsForm(records[0].values)
    if not form.is_valid():
        checked.problems.extend(_form_problems(records[0], form))
        return
    mapping = {
        "global_daily_target": "global_daily_target",
        "global_fare_percentage": "global_fare_percentage",
        "enable_target_sharing": "target_sharing",
        "instant_payouts_enabled": "instant_payouts",
        "operating_hours_start": "operating_hours_start",
        "operating_hours_end": "operating_hours_end",
        "bonus_enabled": "bonus_enabled",
        "bonus_amount": "bonus_amount",
    }
    values: dict[str, Any] = {}
    for legacy_name, ours in mapping.items():
        value = form.cleaned_data.get(legacy_name)
        if value is None:
            continue
        if ours == "global_fare_percentage":
            value = value.quantize(Decimal("0.01"))
        elif isinstance(value, Decimal):
            value = _cents(value, what=f"settings {legacy_name}", warnings=checked.warnings)
        values[ours] = value
    checked.settings = LegacySettings(values)


def _check_vehicles(records: list[Record], checked: Checked) -> None:
    by_id: dict[str, str] = {}
    by_account: dict[str, str] = {}
    for record in records:
        checked.vehicle_names.add(record.get("name").strip().upper())
        form = VehicleForm(record.values)
        if not form.is_valid():
            checked.problems.extend(_form_problems(record, form))
            continue
        data = form.cleaned_data
        folded = data["name"].upper()
        if folded in by_id:
            checked.problems.append(
                Problem(record.where, "name", f"{data['name']!r} is already {by_id[folded]}")
            )
            continue
        if data["mpesa_account"] in by_account:
            checked.problems.append(
                Problem(
                    record.where,
                    "mpesa_account",
                    f"{data['mpesa_account']!r} is already the account of "
                    f"{by_account[data['mpesa_account']]}",
                )
            )
            continue
        by_id[folded] = record.where
        by_account[data["mpesa_account"]] = data["name"]
        status = data["status"] or VehicleStatus.AVAILABLE
        if status in (VehicleStatus.ASSIGNED, VehicleStatus.SUBBED):
            status = VehicleStatus.AVAILABLE  # these follow the assignments
        checked.vehicles.append(
            LegacyVehicle(record.where, data["name"], data["mpesa_account"], status)
        )


def _override(percentage: Decimal | None) -> Decimal | None:
    """A driver's fare percentage: two places; 0 (or none) means the fleet's, as in both apps."""
    return percentage.quantize(Decimal("0.01")) if percentage else None


def _global_target(checked: Checked) -> Decimal:
    if checked.settings is not None and "global_daily_target" in checked.settings.values:
        return Decimal(checked.settings.values["global_daily_target"])
    return FleetSettings.load().global_daily_target


def _check_drivers(records: list[Record], substitutes: list[Record], checked: Checked) -> None:
    global_target = _global_target(checked)
    seen: dict[str, str] = {}
    for record in records:
        checked.driver_names.add(record.get("name").strip().upper())
        form = DriverForm(record.values)
        if not form.is_valid():
            checked.problems.extend(_form_problems(record, form))
            continue
        data = form.cleaned_data
        driver_id = data["name"]
        rollover = bool(data["is_rollover_target"]) and bool(data["daily_target"])
        daily_target = data["daily_target"] or None
        debt = ZERO
        rollover_target = None
        if rollover:
            assert daily_target is not None
            rollover_target = money(daily_target)
            debt = max(ZERO, money(daily_target - global_target))
            daily_target = None  # the legacy app went back to the global target once cleared
        terminated = data["exit_date"]
        vehicle = data["assigned_tuktuk"] or None
        if terminated is not None and vehicle is not None:
            checked.warnings.append(
                f"{driver_id} left on {terminated} but still had {vehicle}: imported without it"
            )
            vehicle = None
        checked.drivers.append(
            LegacyDriver(
                where=record.where,
                legacy_id=driver_id,
                driver_id=driver_id,
                name=data["driver_name"],
                mpesa_number=data["mpesa_number"],
                is_substitute=False,
                vehicle_id=vehicle,
                active=terminated is None,
                terminated_on=terminated,
                alias=data["sunny_id"],
                target_sharing=data["target_sharing_override"] or Override.FOLLOW_GLOBAL,
                instant_payout=data["instant_payout_override"] or Override.FOLLOW_GLOBAL,
                daily_target=money(daily_target) if daily_target else None,
                fare_percentage=_override(data["fare_percentage"]),
                misses=data["consecutive_misses"] or 0,
                preferred_day_off=data["preferred_day_off"],
                balance=_cents(
                    data["current_balance"] or ZERO,
                    what=f"{driver_id} current_balance",
                    warnings=checked.warnings,
                ),
                rollover_debt=debt,
                rollover_target=rollover_target,
                deposit_required=bool(data["deposit_required"]),
                deposit_initial=money(data["initial_deposit_amount"] or ZERO),
                allow_deduction=bool(data["allow_target_deduction_from_deposit"]),
                deposit_balance=data["current_deposit_balance"],
            )
        )
        seen.setdefault(driver_id, record.where)
        if seen[driver_id] != record.where:
            checked.problems.append(
                Problem(record.where, "name", f"{driver_id} is already {seen[driver_id]}")
            )
    for record in substitutes:
        substitute_form = SubstituteForm(record.values)
        if not substitute_form.is_valid():
            checked.problems.extend(_form_problems(record, substitute_form))
            continue
        data = substitute_form.cleaned_data
        legacy_id = data["name"]
        driver_id = "DRV-" + legacy_id.removeprefix("SUB-")
        if driver_id in seen:
            checked.problems.append(
                Problem(
                    record.where,
                    "name",
                    f"{legacy_id} would become {driver_id}, which is already {seen[driver_id]}",
                )
            )
            continue
        seen[driver_id] = record.where
        checked.drivers.append(
            LegacyDriver(
                where=record.where,
                legacy_id=legacy_id,
                driver_id=driver_id,
                name=data["full_name"],
                mpesa_number=data["mpesa_number"],
                is_substitute=True,
                vehicle_id=None,
                active=data["status"] != "Inactive",
                terminated_on=None,
                alias=None,
                target_sharing=Override.FOLLOW_GLOBAL,
                instant_payout=Override.FOLLOW_GLOBAL,
                daily_target=money(data["daily_target"]) if data["daily_target"] else None,
                fare_percentage=_override(data["fare_percentage_to_driver"]),
                misses=0,
                preferred_day_off=data["preferred_day_off"],
                balance=_cents(
                    data["target_balance"] or ZERO,
                    what=f"{legacy_id} target_balance",
                    warnings=checked.warnings,
                ),
                rollover_debt=ZERO,
                rollover_target=None,
                deposit_required=False,
                deposit_initial=ZERO,
                allow_deduction=False,
            )
        )
    _check_links(checked)


def _check_links(checked: Checked) -> None:
    """One driver a vehicle, one driver an alias, no alias that is a vehicle's account. (A
    vehicle named but not in the export may be one TukTuk Ledger has: see _apply.)"""
    accounts = {vehicle.account for vehicle in checked.vehicles}
    holders: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for driver in checked.drivers:
        if driver.vehicle_id is not None:
            key = driver.vehicle_id.upper()
            if key in holders:
                checked.problems.append(
                    Problem(
                        driver.where,
                        "assigned_tuktuk",
                        f"{driver.vehicle_id} is already {holders[key]}'s (one driver a vehicle)",
                    )
                )
            holders[key] = driver.driver_id
        if driver.alias is not None:
            if driver.alias in aliases:
                checked.problems.append(
                    Problem(
                        driver.where,
                        "sunny_id",
                        f"{driver.alias!r} is already {aliases[driver.alias]}'s",
                    )
                )
            elif driver.alias in accounts:
                checked.problems.append(
                    Problem(driver.where, "sunny_id", f"{driver.alias!r} is a vehicle's account")
                )
            aliases[driver.alias] = driver.driver_id


def _check_deposits(records: list[Record], checked: Checked) -> None:
    drivers = {d.legacy_id: d for d in checked.drivers if not d.is_substitute}
    rows: dict[str, list[tuple[int, int, Record, dict[str, Any]]]] = defaultdict(list)
    for order, record in enumerate(records):
        form = DepositForm(record.values)
        if not form.is_valid():
            checked.problems.extend(_form_problems(record, form))
            continue
        data = form.cleaned_data
        if data["parent"] not in drivers and data["parent"] in checked.driver_names:
            continue  # a driver of the export refused: its own problem says why
        if data["parent"] not in drivers:
            checked.problems.append(
                Problem(record.where, "parent", f"no driver {data['parent']} in the export")
            )
            continue
        rows[data["parent"]].append((data["idx"] or 0, order, record, data))
    for legacy_id, driver in drivers.items():
        running = ZERO
        differing = 0
        for _, _, record, data in sorted(rows.get(legacy_id, []), key=lambda r: (r[0], r[1])):
            kind = DepositEntryKind(data["transaction_type"])
            amount = _cents(
                data["amount"], what=f"{record.where} amount", warnings=checked.warnings
            )
            if amount == 0:
                checked.warnings.append(f"{record.where}: a {kind} of 0 KSH, left out")
                continue
            if (kind in DEPOSIT_CREDIT_KINDS and amount < 0) or (
                kind in DEPOSIT_DEBIT_KINDS and amount > 0
            ):
                sign = "more" if kind in DEPOSIT_CREDIT_KINDS else "less"
                checked.problems.append(
                    Problem(
                        record.where,
                        "amount",
                        f"a {kind} of {amount} KSH: it must be {sign} than 0",
                    )
                )
                continue
            running += amount
            if running < 0:
                checked.problems.append(
                    Problem(
                        record.where,
                        "amount",
                        f"the deposit would go below zero here ({running} KSH): the rows are "
                        "out of order or one is missing",
                    )
                )
                break
            after = data["balance_after_transaction"]
            if after is not None and money(after) != running:
                differing += 1
            date = data["transaction_date"]
            words = [
                data["transaction_reference"] or "",
                data["description"] or "",
                f"({SOURCE_APP}"
                + (f", {date.isoformat()}" if date else "")
                + (f", approved by {data['approved_by']}" if data["approved_by"] else "")
                + ")",
            ]
            driver.deposits.append(
                LegacyDeposit(record.where, kind, amount, " ".join(w for w in words if w)[:255])
            )
        if differing:
            checked.warnings.append(
                f"{legacy_id}: {differing} deposit row(s) whose legacy balance after differs "
                "from the running sum of the amounts"
            )
        legacy_balance = driver.deposit_balance
        if legacy_balance is None:
            continue
        target = _cents(legacy_balance, what=f"{legacy_id} deposit", warnings=checked.warnings)
        difference = target - running
        if difference != 0:
            driver.deposits.append(
                LegacyDeposit(
                    driver.where,
                    DepositEntryKind.ADJUSTMENT,
                    difference,
                    f"{SOURCE_APP} deposit balance {target} KSH; its history adds up to "
                    f"{running} KSH",
                )
            )
            checked.warnings.append(
                f"{legacy_id}: the deposit history adds up to {format_ksh(running)} KSH, the "
                f"legacy balance is {format_ksh(target)} KSH: an Adjustment of "
                f"{format_ksh(difference)} KSH carries the difference"
            )


def _check_transactions(records: list[Record], checked: Checked) -> None:
    first: dict[str, str] = {}
    copies: Counter[str] = Counter()
    skipped: list[str] = []
    for record in records:
        form = TransactionForm(record.values)
        if not form.is_valid():
            checked.problems.extend(_form_problems(record, form))
            continue
        data = form.cleaned_data
        trans_id = data["transaction_id"]
        if trans_id in first:
            copies[trans_id] += 1
            continue
        first[trans_id] = record.where
        amount = money(data["amount"])
        if amount <= 0:
            skipped.append(trans_id)
            continue
        kind = data["transaction_type"] or "Payment"
        share = data["driver_share"]
        contribution = data["target_contribution"]
        note = (
            f"{SOURCE_APP} {kind}, {data['payment_status'] or 'no status'}: "
            f"share {share if share is not None else '-'}, "
            f"contribution {contribution if contribution is not None else '-'}, "
            f"B2C {'sent' if data['b2c_payment_sent'] else 'not sent'}"
            + (f" ({data['name']})" if data["name"] else "")
        )
        checked.transactions.append(
            LegacyTransaction(
                where=record.where,
                trans_id=trans_id,
                transaction_type=LEGACY_TRANSACTION_TYPES[kind],
                vehicle_id=data["tuktuk"] or None,
                driver_ref=(data["driver"] or data["substitute_driver"] or "").upper() or None,
                amount=amount,
                moment=data["timestamp"],
                payer=data["customer_phone"] or "",
                note=note[:255],
            )
        )
    if copies:
        checked.warnings.append(
            f"{len(copies)} TransID(s) the legacy app recorded more than once (the race it "
            f"suffered), imported once: {_listed(sorted(copies))}"
        )
    if skipped:
        checked.warnings.append(
            f"{len(skipped)} transaction(s) of 0 KSH or less left out: {_listed(skipped)}"
        )


def legacy_export_check(read: ExportRead) -> Checked:
    """Every record through its form, and the checks across records; no database writes."""
    checked = Checked()
    checked.problems.extend(Problem(p.where, None, p.reason) for p in read.problems)
    _check_settings(read.records[SETTINGS], checked)
    _check_vehicles(read.records[VEHICLE], checked)
    _check_drivers(read.records[DRIVER], read.records[SUBSTITUTE], checked)
    _check_deposits(read.records[DEPOSIT], checked)
    _check_transactions(read.records[TRANSACTION], checked)
    if not any(read.records.values()) and not checked.problems:
        checked.problems.append(Problem("the export", None, "no legacy records in it"))
    return checked


# --- against the database, then written -----------------------------------------------------


@dataclass
class LegacyImportResult:
    dry_run: bool = False
    business_day: dt.date | None = None
    settings: str = "not in the export: left as they are"
    settings_imported: bool = False
    vehicles_created: list[str] = field(default_factory=list)
    vehicles_present: list[str] = field(default_factory=list)
    drivers_created: list[str] = field(default_factory=list)
    substitutes_created: list[str] = field(default_factory=list)
    drivers_present: list[str] = field(default_factory=list)
    openings: int = 0
    opening_total: Decimal = ZERO
    rollover_debt_total: Decimal = ZERO
    balances_left: list[str] = field(default_factory=list)  # drivers with a ledger already
    deposit_entries: int = 0
    deposit_total: Decimal = ZERO
    deposits_left: list[str] = field(default_factory=list)  # deposits with entries already
    transactions_imported: int = 0
    transactions_known: int = 0
    warnings: list[str] = field(default_factory=list)
    drivers_reconciled: int = 0
    discrepancies: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.settings_imported
            or self.vehicles_created
            or self.drivers_created
            or self.substitutes_created
            or self.openings
            or self.deposit_entries
            or self.transactions_imported
        )

    def summary_lines(self) -> list[str]:
        lines = [
            f"Settings: {self.settings}.",
            f"Vehicles: {len(self.vehicles_created)} created, "
            f"{len(self.vehicles_present)} already in TukTuk Ledger.",
            f"Drivers: {len(self.drivers_created)} created, {len(self.substitutes_created)} "
            f"substitutes created, {len(self.drivers_present)} already in TukTuk Ledger.",
            f"Opening balances ({self.business_day}): {self.openings} entered, "
            f"{format_ksh(self.opening_total)} KSH in total, after "
            f"{format_ksh(self.rollover_debt_total)} KSH of rollover debt.",
            f"Deposits: {self.deposit_entries} entries, {format_ksh(self.deposit_total)} KSH "
            "held in total.",
            f"Transactions: {self.transactions_imported} imported as history, "
            f"{self.transactions_known} already known.",
        ]
        if self.balances_left:
            lines.append(
                "Left as they are (they have a ledger already): " + _listed(self.balances_left)
            )
        if self.deposits_left:
            lines.append("Deposits left as they are: " + _listed(self.deposits_left))
        lines += [f"Note: {warning}" for warning in self.warnings]
        lines.append(
            f"Reconciliation: {self.drivers_reconciled} imported driver(s) checked, "
            f"{len(self.discrepancies)} discrepancies"
            + (f" ({_listed(self.discrepancies)})" if self.discrepancies else "")
            + "."
        )
        if self.dry_run:
            lines.append("Dry run: the export is valid; nothing was written.")
        elif not self.changed:
            lines.append("Nothing to import: all of it is in TukTuk Ledger already.")
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "business_day": self.business_day.isoformat() if self.business_day else None,
            "settings": self.settings,
            "settings_imported": self.settings_imported,
            "vehicles_created": self.vehicles_created,
            "vehicles_present": self.vehicles_present,
            "drivers_created": self.drivers_created,
            "substitutes_created": self.substitutes_created,
            "drivers_present": self.drivers_present,
            "openings": self.openings,
            "opening_total": self.opening_total,
            "rollover_debt_total": self.rollover_debt_total,
            "balances_left": self.balances_left,
            "deposit_entries": self.deposit_entries,
            "deposit_total": self.deposit_total,
            "deposits_left": self.deposits_left,
            "transactions_imported": self.transactions_imported,
            "transactions_known": self.transactions_known,
            "warnings": self.warnings,
            "drivers_reconciled": self.drivers_reconciled,
            "discrepancies": self.discrepancies,
            "changed": self.changed,
        }


def _settings_apply(legacy: LegacySettings, result: LegacyImportResult) -> None:
    """Imported only over settings nobody has changed yet (the defaults), or already equal."""
    fleet = FleetSettings.load()
    differing = {
        name: value for name, value in legacy.values.items() if getattr(fleet, name) != value
    }
    if not differing:
        result.settings = "already the legacy settings"
        return
    defaults = FleetSettings()
    untouched = all(getattr(fleet, name) == getattr(defaults, name) for name in legacy.values)
    shown = ", ".join(f"{name} {value}" for name, value in differing.items())
    if untouched:
        FleetSettings.objects.filter(pk=fleet.pk).update(**differing)
        result.settings = f"imported ({shown})"
        result.settings_imported = True
    else:
        result.settings = "kept: they were changed in TukTuk Ledger already"
        result.warnings.append(
            f"the fleet settings were changed in TukTuk Ledger already and are kept; the legacy "
            f"ones differ: {shown} (set them in the admin if they should apply)"
        )


def _known_trans_ids(trans_ids: list[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(trans_ids), _BATCH):
        chunk = trans_ids[start : start + _BATCH]
        known.update(
            Transaction.objects.filter(trans_id__in=chunk).values_list("trans_id", flat=True)
        )
    return known


@dataclass
class _Plan:
    new_vehicles: list[LegacyVehicle] = field(default_factory=list)
    vehicle_pks: dict[str, int] = field(default_factory=dict)  # upper-cased id -> pk
    accounts: dict[int, str] = field(default_factory=dict)  # vehicle pk -> account
    new_drivers: list[LegacyDriver] = field(default_factory=list)
    fresh: list[tuple[LegacyDriver, Driver]] = field(default_factory=list)  # present, no ledger
    with_deposit: set[int] = field(default_factory=set)  # driver pks whose deposit has entries
    driver_pks: dict[str, int] = field(default_factory=dict)  # driver id -> pk


def _plan(checked: Checked, result: LegacyImportResult) -> tuple[_Plan, list[Problem]]:
    plan = _Plan()
    problems: list[Problem] = []
    vehicles = {vehicle.vehicle_id.upper(): vehicle for vehicle in Vehicle.objects.all()}
    by_account = {vehicle.mpesa_account: vehicle for vehicle in vehicles.values()}
    aliases = dict(
        Driver.objects.exclude(account_alias=None).values_list("account_alias", "driver_id")
    )
    for vehicle in vehicles.values():
        plan.vehicle_pks[vehicle.vehicle_id.upper()] = vehicle.pk
        plan.accounts[vehicle.pk] = vehicle.mpesa_account
    new_ids: set[str] = set()
    for vehicle_row in checked.vehicles:
        found = vehicles.get(vehicle_row.vehicle_id.upper())
        if found is not None:
            result.vehicles_present.append(found.vehicle_id)
            if found.mpesa_account != vehicle_row.account:
                result.warnings.append(
                    f"{found.vehicle_id} keeps its account {found.mpesa_account} (the legacy one "
                    f"is {vehicle_row.account})"
                )
            continue
        owner = by_account.get(vehicle_row.account)
        if owner is not None:
            problems.append(
                Problem(
                    vehicle_row.where,
                    "mpesa_account",
                    f"{vehicle_row.account!r} is already the account of {owner.vehicle_id} in "
                    "TukTuk Ledger",
                )
            )
        elif vehicle_row.account in aliases:
            problems.append(
                Problem(
                    vehicle_row.where,
                    "mpesa_account",
                    f"{vehicle_row.account!r} is driver {aliases[vehicle_row.account]}'s own "
                    "account",
                )
            )
        plan.new_vehicles.append(vehicle_row)
        new_ids.add(vehicle_row.vehicle_id.upper())

    existing = {
        driver.driver_id: driver
        for driver in Driver.objects.filter(driver_id__in=[d.driver_id for d in checked.drivers])
    }
    with_ledger = set(
        LedgerEntry.objects.filter(driver__in=list(existing.values()))
        .values_list("driver_id", flat=True)
        .distinct()
    )
    plan.with_deposit = set(
        DepositEntry.objects.filter(driver__in=list(existing.values()))
        .values_list("driver_id", flat=True)
        .distinct()
    )
    holders = dict(Driver.objects.exclude(vehicle=None).values_list("vehicle_id", "driver_id"))
    for legacy in checked.drivers:
        present = existing.get(legacy.driver_id)
        if present is not None:
            result.drivers_present.append(present.driver_id)
            plan.driver_pks[present.driver_id] = present.pk
            if present.pk in with_ledger or present.current_balance != 0:
                result.balances_left.append(present.driver_id)
            else:
                plan.fresh.append((legacy, present))
            if present.pk in plan.with_deposit and legacy.deposits:
                result.deposits_left.append(present.driver_id)
            continue
        if legacy.vehicle_id is not None:
            key = legacy.vehicle_id.upper()
            if key in checked.vehicle_names and key not in new_ids:
                pass  # a vehicle of the export refused: its own problem says why
            elif key not in new_ids and key not in plan.vehicle_pks:
                problems.append(
                    Problem(
                        legacy.where,
                        "assigned_tuktuk",
                        f"no vehicle {legacy.vehicle_id} in the export or in TukTuk Ledger",
                    )
                )
            elif key in plan.vehicle_pks and plan.vehicle_pks[key] in holders:
                problems.append(
                    Problem(
                        legacy.where,
                        "assigned_tuktuk",
                        f"{legacy.vehicle_id} is driver {holders[plan.vehicle_pks[key]]}'s in "
                        "TukTuk Ledger",
                    )
                )
        if legacy.alias is not None and (legacy.alias in aliases or legacy.alias in by_account):
            problems.append(
                Problem(
                    legacy.where,
                    "sunny_id",
                    f"{legacy.alias!r} is already an account in TukTuk Ledger",
                )
            )
        plan.new_drivers.append(legacy)
    return plan, problems


def _vehicles_write(plan: _Plan, result: LegacyImportResult) -> None:
    rows = [
        Vehicle(vehicle_id=v.vehicle_id, mpesa_account=v.account, status=v.status)
        for v in plan.new_vehicles
    ]
    Vehicle.objects.bulk_create(rows, batch_size=_BATCH)
    # MariaDB returns no ids from a bulk insert: read them back.
    created = Vehicle.objects.in_bulk([v.vehicle_id for v in rows], field_name="vehicle_id")
    for vehicle in created.values():
        plan.vehicle_pks[vehicle.vehicle_id.upper()] = vehicle.pk
        plan.accounts[vehicle.pk] = vehicle.mpesa_account
    result.vehicles_created = [v.vehicle_id for v in rows]


def _drivers_write(plan: _Plan, fleet: FleetSettings, result: LegacyImportResult) -> list[Driver]:
    rows = []
    for legacy in plan.new_drivers:
        rows.append(
            Driver(
                driver_id=legacy.driver_id,
                name=legacy.name,
                mpesa_number=legacy.mpesa_number,
                vehicle_id=plan.vehicle_pks[legacy.vehicle_id.upper()]
                if legacy.vehicle_id
                else None,
                daily_target=legacy.daily_target,
                fare_percentage=legacy.fare_percentage,
                target_sharing=legacy.target_sharing,
                instant_payout=legacy.instant_payout,
                is_active=legacy.active,
                terminated_at=(
                    aware(dt.datetime.combine(legacy.terminated_on, dt.time()))
                    if legacy.terminated_on
                    else None
                ),
                account_alias=legacy.alias,
                is_substitute=legacy.is_substitute,
                preferred_day_off=legacy.preferred_day_off,
            )
        )
    Driver.objects.bulk_create(rows, batch_size=_BATCH)
    created = Driver.objects.in_bulk([d.driver_id for d in rows], field_name="driver_id")
    for driver in created.values():
        plan.driver_pks[driver.driver_id] = driver.pk
    result.drivers_created = [d.driver_id for d in plan.new_drivers if not d.is_substitute]
    result.substitutes_created = [d.driver_id for d in plan.new_drivers if d.is_substitute]
    # The assignment history follows the vehicles given (from before history was kept).
    assignments_sync(
        driver_pks=[created[d.driver_id].pk for d in plan.new_drivers if d.vehicle_id],
        at=timezone.now(),
    )
    return [created[d.driver_id] for d in plan.new_drivers]


def _openings_write(
    receivers: list[tuple[LegacyDriver, Driver]],
    fleet: FleetSettings,
    day: dt.date,
    result: LegacyImportResult,
) -> None:
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                driver=driver,
                business_day=day,
                kind=EntryKind.OPENING,
                amount=legacy.opening,
                note=legacy.opening_note(),
            )
            for legacy, driver in receivers
        ],
        batch_size=_BATCH,
    )
    for legacy, driver in receivers:
        flagged = legacy.misses >= TERMINATION_REVIEW_MISSES and driver.effective_sharing(fleet)
        driver_balance_set(
            driver_pk=driver.pk,
            target=driver.effective_target(fleet),
            balance=legacy.opening,
            day=day,
            consecutive_misses=legacy.misses,
            flagged_for_review=flagged,
        )
        result.openings += 1
        result.opening_total += legacy.opening
        result.rollover_debt_total += legacy.rollover_debt


def _deposits_write(
    receivers: list[tuple[LegacyDriver, Driver]],
    plan: _Plan,
    actor: str,
    result: LegacyImportResult,
) -> None:
    for legacy, driver in receivers:
        if legacy.is_substitute or driver.pk in plan.with_deposit:
            continue
        DepositAccount.objects.get_or_create(
            driver=driver,
            defaults={
                "required": legacy.deposit_required,
                "initial_amount": legacy.deposit_initial,
                "allow_target_deduction": legacy.allow_deduction,
            },
        )
        balance = ZERO
        for entry in legacy.deposits:
            written = deposit_entry_add(
                driver=driver,
                kind=entry.kind,
                amount=entry.amount,
                reference=entry.reference,
                actor=actor,
            )
            balance = written.balance_after
            result.deposit_entries += 1
        result.deposit_total += balance


def _transactions_write(checked: Checked, plan: _Plan, result: LegacyImportResult) -> None:
    trans_ids = [t.trans_id for t in checked.transactions]
    known = _known_trans_ids(trans_ids)
    result.transactions_known = len(known)
    fleet = FleetSettings.load()
    unlinked: list[str] = []
    rows = []
    for legacy in checked.transactions:
        if legacy.trans_id in known:
            continue
        vehicle_pk = plan.vehicle_pks.get(legacy.vehicle_id.upper()) if legacy.vehicle_id else None
        driver_pk = None
        if legacy.driver_ref:
            ref = legacy.driver_ref
            match = SUBSTITUTE_ID.match(ref)
            driver_pk = plan.driver_pks.get(f"DRV-{match.group(1)}" if match else ref)
            if driver_pk is None:
                driver_pk = (
                    Driver.objects.filter(driver_id=ref).values_list("pk", flat=True).first()
                )
        if (legacy.vehicle_id and vehicle_pk is None) or (legacy.driver_ref and driver_pk is None):
            unlinked.append(legacy.trans_id)
        rows.append(
            Transaction(
                trans_id=legacy.trans_id,
                transaction_type=legacy.transaction_type,
                status=IMPORTED_STATUS,
                source=TransactionSource.LEGACY,
                driver_id=driver_pk,
                vehicle_id=vehicle_pk,
                account_reference=plan.accounts.get(vehicle_pk, "") if vehicle_pk else "",
                amount=legacy.amount,
                payer_msisdn=legacy.payer,
                mpesa_time=legacy.moment,
                received_at=legacy.moment,
                business_day=business_day_of(legacy.moment, fleet=fleet),
                note=legacy.note,
            )
        )
    Transaction.objects.bulk_create(rows, batch_size=_BATCH)
    result.transactions_imported = len(rows)
    if unlinked:
        result.warnings.append(
            f"{len(unlinked)} transaction(s) name a vehicle or driver the export and TukTuk "
            f"Ledger do not have, kept without the link: {_listed(unlinked)}"
        )


def _apply(checked: Checked, actor: str, result: LegacyImportResult) -> None:
    plan, problems = _plan(checked, result)
    if checked.problems or problems:
        raise LegacyImportRejected(problems_sorted([*checked.problems, *problems]))
    if checked.settings is not None:
        _settings_apply(checked.settings, result)
    fleet = FleetSettings.load()
    result.business_day = day = current_business_day(fleet)
    _vehicles_write(plan, result)
    created = _drivers_write(plan, fleet, result)
    receivers = list(zip(plan.new_drivers, created, strict=True))
    # Present drivers without a ledger get their balance under their row lock, as any write.
    locked = Driver.objects.select_for_update().in_bulk([driver.pk for _, driver in plan.fresh])
    receivers += [(legacy, locked[driver.pk]) for legacy, driver in plan.fresh]
    _openings_write(receivers, fleet, day, result)
    _deposits_write(receivers, plan, actor, result)
    _transactions_write(checked, plan, result)
    snapshots = balance_snapshots(driver_pks=[driver.pk for _, driver in receivers])
    result.drivers_reconciled = len(snapshots)
    result.discrepancies = [s.driver_id for s in snapshots if s.needs_fix]


_PLACE = re.compile(r"^(.*?) (?:line|document) ([0-9]+)")


def problems_sorted(problems: list[Problem]) -> list[Problem]:
    """In the order of the files and their lines (documents), as an operator fixes them."""

    def key(problem: Problem) -> tuple[str, int]:
        match = _PLACE.match(problem.where)
        return (match.group(1), int(match.group(2))) if match else (problem.where, 0)

    return sorted(problems, key=key)


def legacy_import(
    *, read: ExportRead, dry_run: bool = False, actor: str = ""
) -> LegacyImportResult:
    """Import a legacy export whole, or raise LegacyImportRejected listing every problem
    (nothing written). A dry run does everything, then rolls it back: its report is the real
    one's. A real import that writes anything is recorded in the event log with its actor."""
    checked = legacy_export_check(read)
    result = LegacyImportResult(dry_run=dry_run, warnings=list(checked.warnings))
    try:
        with transaction.atomic():
            _apply(checked, actor, result)
            if dry_run:
                transaction.set_rollback(True)
            elif result.changed:
                events.event_record(
                    title=events.EventTitle.FLEET_IMPORTED,
                    actor=actor,
                    message=f"legacy import from {SOURCE_APP} by {actor or 'unknown'}: "
                    + " ".join(result.summary_lines()[:6]),
                    data={
                        "source": SOURCE_APP,
                        "files": read.files,
                        "vehicles_created": len(result.vehicles_created),
                        "drivers_created": len(result.drivers_created),
                        "substitutes_created": len(result.substitutes_created),
                        "openings": result.openings,
                        "opening_total": str(result.opening_total),
                        "deposit_entries": result.deposit_entries,
                        "transactions_imported": result.transactions_imported,
                        "settings_imported": result.settings_imported,
                    },
                )
    except DatabaseError as exc:
        raise LegacyImportRejected(
            [
                Problem(
                    "the database",
                    None,
                    f"refused the import ({exc}); nothing was imported. If someone was changing "
                    "the fleet at the same time, run the import again.",
                )
            ]
        ) from exc
    return result
