"""A legacy fleet as the Frappe app `tuktuk_management` holds it, written as Frappe exports it:
the Data Export CSV (heading block, quoted names, the deposit child rows after a `~`, dates in
the site's dd-mm-yyyy) and /api/resource JSON. Deterministic for a seed; it also says what
the import must make of it (balances, rollover debts, deposit balances)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.support.clock import NAIROBI

GLOBAL_TARGET = Decimal("3000")
DEPOSIT_LABELS = {
    "transaction_date": "Transaction Date",
    "transaction_type": "Transaction Type",
    "amount": "Amount",
    "transaction_reference": "Reference (Mpesa/Receipt #)",
    "balance_after_transaction": "Balance After Transaction",
    "description": "Description/Notes",
    "approved_by": "Approved By",
}


@dataclass
class LegacyFleet:
    settings: dict[str, Any]
    vehicles: list[dict[str, Any]]
    drivers: list[dict[str, Any]]  # each with its deposit_transactions
    substitutes: list[dict[str, Any]]
    transactions: list[dict[str, Any]]
    # What the import must make of it, by our driver id.
    openings: dict[str, Decimal] = field(default_factory=dict)
    debts: dict[str, Decimal] = field(default_factory=dict)
    deposits: dict[str, Decimal] = field(default_factory=dict)

    @property
    def trans_ids(self) -> set[str]:
        return {t["transaction_id"] for t in self.transactions}


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def legacy_fleet(
    *, today: dt.date, drivers: int = 300, transactions: int = 3000, seed: int = 12
) -> LegacyFleet:
    rng = random.Random(seed)
    fleet = LegacyFleet(
        settings={
            "doctype": "TukTuk Settings",
            "name": "TukTuk Settings",
            "global_daily_target": 3000.0,
            "global_fare_percentage": 50.0,
            "enable_target_sharing": 1,
            "instant_payouts_enabled": 0,
            "operating_hours_start": "5:30:00",
            "operating_hours_end": "0:00:00",
            "bonus_enabled": 0,
            "bonus_amount": 50.0,
            "mpesa_paybill": "600984",
            "mpesa_api_key": "***",
        },
        vehicles=[],
        drivers=[],
        substitutes=[],
        transactions=[],
    )
    for n in range(1, drivers + 6):  # five spare vehicles
        fleet.vehicles.append(
            {
                "name": f"TUK-885-{n:03d}",
                "tuktuk_id": f"{n:03d}",
                "mpesa_account": f"TUK{n:03d}",
                "status": rng.choice(["Assigned", "Assigned", "Assigned", "Charging"])
                if n <= drivers
                else "Available",
                "battery_level": rng.randint(20, 100),
            }
        )
    for n in range(1, drivers + 1):
        driver_id = f"DRV-{112000 + n}"
        balance = Decimal(rng.randrange(0, 250000)) / 100
        if n % 17 == 0:
            balance = -Decimal(rng.randrange(100, 900))  # the old debt system: negative
        rollover = n % 5 == 0
        daily_target: Decimal | int = 0
        debt = Decimal(0)
        if rollover:
            debt = Decimal(rng.randrange(100, 6000))
            daily_target = GLOBAL_TARGET + debt
        elif n % 7 == 0:
            daily_target = Decimal(2500)
        history, deposit = _deposit_history(rng, n, today)
        fleet.drivers.append(
            {
                "doctype": "TukTuk Driver",
                "name": driver_id,
                "driver_name": f"Legacy Driver {n}",
                "driver_first_name": "Legacy",
                "driver_last_name": f"Driver {n}",
                "mpesa_number": f"07{n:08d}" if n % 2 else f"2541{n:08d}",
                "assigned_tuktuk": f"TUK-885-{n:03d}",
                "target_sharing_override": ["Follow Global", "Enable", "Disable"][n % 3]
                if n % 11 == 0
                else "Follow Global",
                "instant_payout_override": "Enable" if n % 13 == 0 else "Follow Global",
                "daily_target": float(daily_target),
                "is_rollover_target": 1 if rollover else 0,
                "fare_percentage": 60.0 if n % 9 == 0 else 0.0,
                "current_balance": float(balance),
                "left_to_target": float(max(Decimal(0), (daily_target or GLOBAL_TARGET) - balance)),
                "consecutive_misses": rng.randint(0, 2),
                "preferred_day_off": ["MONDAY", "SUNDAY", "No Preference"][n % 3],
                "deposit_required": 1,
                "initial_deposit_amount": float(history[0]["amount"]),
                "current_deposit_balance": float(deposit),
                "allow_target_deduction_from_deposit": n % 4 == 0,
                "sunny_id": f"D{112000 + n}",
                "driver_national_id": f"{30000000 + n}",
                "deposit_transactions": history,
            }
        )
        fleet.openings[driver_id] = _money(balance) - debt
        fleet.debts[driver_id] = debt
        fleet.deposits[driver_id] = deposit
    for n in range(1, 4):
        legacy_id = f"SUB-{212000 + n}"
        balance = Decimal(rng.randrange(0, 150000)) / 100
        fleet.substitutes.append(
            {
                "doctype": "TukTuk Substitute Driver",
                "name": legacy_id,
                "first_name": "Sub",
                "last_name": f"Stitute {n}",
                "phone_number": f"07{90000000 + n}",
                "mpesa_number": f"07{90000000 + n}",
                "status": "Active",
                "daily_target": 2000.0,
                "fare_percentage_to_driver": 50.0,
                "target_balance": float(balance),
            }
        )
        fleet.openings[f"DRV-{212000 + n}"] = _money(balance)
        fleet.debts[f"DRV-{212000 + n}"] = Decimal(0)
    start = dt.datetime.combine(today - dt.timedelta(days=30), dt.time(6, 0), tzinfo=NAIROBI)
    for number in range(transactions):
        n = 1 + number % drivers
        when = start + dt.timedelta(minutes=rng.randrange(0, 30 * 24 * 60))
        amount = rng.choice([50, 100, 150, 155, 200, 250, 300, 500])
        share = Decimal(amount) / 2
        kind = "Payment" if number % 50 else "Driver Repayment"
        fleet.transactions.append(
            {
                "doctype": "TukTuk Transaction",
                "name": f"{rng.getrandbits(40):010x}",
                "transaction_id": f"TL{number:08d}",
                "transaction_type": kind,
                "tuktuk": f"TUK-885-{n:03d}",
                "driver": f"DRV-{112000 + n}",
                "amount": float(amount),
                "driver_share": float(share) if kind == "Payment" else 0.0,
                "target_contribution": float(amount - share) if kind == "Payment" else 0.0,
                "customer_phone": f"2547{rng.randrange(10**7, 10**8)}",
                "timestamp": when.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f"),
                "payment_status": "Completed" if number % 40 else "Failed",
                "b2c_payment_sent": 1 if number % 40 else 0,
            }
        )
    # The race the legacy app suffered: a few TransIDs recorded twice.
    for copy in fleet.transactions[:3]:
        fleet.transactions.append({**copy, "name": copy["name"] + "-2"})
    return fleet


def _deposit_history(
    rng: random.Random, n: int, today: dt.date
) -> tuple[list[dict[str, Any]], Decimal]:
    initial = Decimal(rng.choice([1000, 2000, 3000]))
    rows = [("Initial Deposit", initial)]
    if n % 3 == 0:
        rows.append(("Top Up", Decimal(rng.choice([500, 1000]))))
    if n % 8 == 0:
        rows.append(("Damage Deduction", -Decimal(rng.choice([200, 350]))))
    if n % 10 == 0:
        rows.append(("Target Deduction", -Decimal(400)))
    if n % 12 == 0:
        rows.append(("Adjustment", Decimal(-100)))
    history = []
    balance = Decimal(0)
    for idx, (kind, amount) in enumerate(rows, start=1):
        balance += amount
        history.append(
            {
                "name": f"dep{n}-{idx}",
                "idx": idx,
                "transaction_date": (today - dt.timedelta(days=60 - idx)).isoformat(),
                "transaction_type": kind,
                "amount": float(amount),
                "transaction_reference": f"REF{n}{idx}" if kind == "Top Up" else "",
                "balance_after_transaction": float(balance),
                "description": f"{kind} for driver {n}",
                "approved_by": "admin@sunnytuktuk.com",
            }
        )
    return history, balance


# --- writers -------------------------------------------------------------------------------


def _api_json(documents: list[dict[str, Any]] | dict[str, Any]) -> str:
    return json.dumps({"data": documents}, indent=1)


def write_api_json(fleet: LegacyFleet, directory: Path) -> Path:
    """/api/resource answers, one file per doctype, named after it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "TukTuk Settings.json").write_text(_api_json(fleet.settings))
    (directory / "TukTuk Vehicle.json").write_text(_api_json(fleet.vehicles))
    (directory / "TukTuk Driver.json").write_text(_api_json(fleet.drivers))
    (directory / "TukTuk Substitute Driver.json").write_text(_api_json(fleet.substitutes))
    (directory / "TukTuk Transaction.json").write_text(_api_json(fleet.transactions))
    return directory


def _frappe_date(iso: str) -> str:
    """The site's date format, dd-mm-yyyy."""
    return dt.date.fromisoformat(iso[:10]).strftime("%d-%m-%Y")


def _frappe_datetime(text: str) -> str:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text  # a bad value stays bad
    return moment.strftime("%d-%m-%Y %H:%M:%S")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def data_export_csv(
    doctype: str,
    columns: list[tuple[str, str, str]],
    documents: list[dict[str, Any]],
    *,
    child: tuple[str, str, list[tuple[str, str, str]]] | None = None,
) -> str:
    """Frappe's Data Export: columns (fieldname, label, type) of the doctype, then, after a
    `~`, those of a child table (doctype, parentfield, columns), child rows beyond the first on
    lines of their own; names quoted; dates in dd-mm-yyyy."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    table = ["DocType:", doctype] + [""] * (len(columns) - 1)
    labels = ["Column Labels:"] + [label for _, label, _ in columns]
    names = ["Column Name:"] + [name for name, _, _ in columns]
    mandatory = ["Mandatory:"] + ["Yes" if name == "name" else "No" for name, _, _ in columns]
    types = ["Type:"] + [kind for _, _, kind in columns]
    infos = ["Info:"] + [
        "dd-mm-yyyy" if kind in ("Date", "Datetime") else "" for *_, kind in columns
    ]
    if child is not None:
        child_doctype, parentfield, child_columns = child
        table += ["~", child_doctype, parentfield] + [""] * (len(child_columns) - 2)
        labels += [""] + [label for _, label, _ in child_columns]
        names += ["~"] + [name for name, _, _ in child_columns]
        mandatory += [""] + ["No" for _ in child_columns]
        types += [""] + [kind for _, _, kind in child_columns]
        infos += [""] + [
            "dd-mm-yyyy" if kind in ("Date", "Datetime") else "" for *_, kind in child_columns
        ]
    writer.writerow([""])
    for row in (table, labels, names, mandatory, types, infos):
        writer.writerow(row)

    def value(document: dict[str, Any], name: str, kind: str) -> str:
        raw = document.get(name, "")
        if name == "name":
            return f'"{raw}"'
        if raw in ("", None):
            return ""
        if kind == "Date":
            return _frappe_date(str(raw))
        if kind == "Datetime":
            return _frappe_datetime(str(raw))
        return _cell(raw)

    for document in documents:
        rows = [[""] + [value(document, name, kind) for name, _, kind in columns]]
        if child is not None:
            children = document.get(child[1]) or []
            for index, row in enumerate(children):
                cells = [value(row, name, kind) for name, _, kind in child[2]]
                if index == 0:
                    rows[0] += ["", *cells]
                else:
                    rows.append(["", *[""] * len(columns), "", *cells])
        writer.writerows(rows)
    return out.getvalue()


VEHICLE_COLUMNS = [
    ("name", "ID", "Data"),
    ("tuktuk_id", "TukTuk ID", "Data"),
    ("status", "Status", "Select"),
    ("mpesa_account", "Mpesa Account", "Data"),
    ("battery_level", "Battery Level (%)", "Percent"),
]
DRIVER_COLUMNS = [
    ("name", "ID", "Data"),
    ("driver_name", "Driver Name", "Data"),
    ("mpesa_number", "Mpesa Phone Number", "Data"),
    ("driver_national_id", "National ID", "Data"),
    ("assigned_tuktuk", "Assigned TukTuk", "Link"),
    ("target_sharing_override", "Target Sharing Override", "Select"),
    ("daily_target", "Individual Daily Target", "Currency"),
    ("is_rollover_target", "Is Rollover Target", "Check"),
    ("fare_percentage", "Individual Fare Percentage", "Percent"),
    ("instant_payout_override", "Instant Payout Preference", "Select"),
    ("current_balance", "Current Target Balance", "Currency"),
    ("left_to_target", "Left to target", "Currency"),
    ("consecutive_misses", "Consecutive Target Misses", "Int"),
    ("preferred_day_off", "Preferred Day Off", "Select"),
    ("deposit_required", "Deposit Required", "Check"),
    ("initial_deposit_amount", "Initial Deposit Amount", "Currency"),
    ("current_deposit_balance", "Current Deposit Balance", "Currency"),
    ("allow_target_deduction_from_deposit", "Allow Target Deduction from Deposit", "Check"),
    ("sunny_id", "Sunny ID", "Data"),
]
DEPOSIT_COLUMNS = [
    ("name", "ID", "Data"),
    ("transaction_date", "Transaction Date", "Date"),
    ("transaction_type", "Transaction Type", "Select"),
    ("amount", "Amount", "Currency"),
    ("transaction_reference", "Reference (Mpesa/Receipt #)", "Data"),
    ("balance_after_transaction", "Balance After Transaction", "Currency"),
    ("description", "Description/Notes", "Small Text"),
    ("approved_by", "Approved By", "Link"),
]
SUBSTITUTE_COLUMNS = [
    ("name", "ID", "Data"),
    ("first_name", "First Name", "Data"),
    ("last_name", "Last Name", "Data"),
    ("phone_number", "Phone Number", "Data"),
    ("mpesa_number", "Mpesa Phone Number", "Data"),
    ("status", "Status", "Select"),
    ("daily_target", "Daily Target (KSH)", "Currency"),
    ("fare_percentage_to_driver", "Fare Percentage to Driver", "Percent"),
    ("target_balance", "Today's Target Balance", "Currency"),
]
TRANSACTION_COLUMNS = [
    ("name", "ID", "Data"),
    ("transaction_id", "Mpesa Transaction ID", "Data"),
    ("transaction_type", "Transaction Type", "Select"),
    ("tuktuk", "TukTuk", "Link"),
    ("driver", "Regular Driver", "Link"),
    ("amount", "Amount", "Currency"),
    ("driver_share", "Driver Share", "Currency"),
    ("target_contribution", "Target Contribution", "Currency"),
    ("customer_phone", "Customer Phone", "Data"),
    ("timestamp", "Transaction Time", "Datetime"),
    ("payment_status", "Payment Status", "Select"),
    ("b2c_payment_sent", "B2C Payment Sent", "Check"),
]


def write_data_export(fleet: LegacyFleet, directory: Path) -> Path:
    """Data Export CSVs (the settings, a Single, come as /api/resource JSON: Frappe's Data
    Export does not export Singles)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "TukTuk Settings.json").write_text(_api_json(fleet.settings))
    (directory / "TukTuk Vehicle.csv").write_text(
        data_export_csv("TukTuk Vehicle", VEHICLE_COLUMNS, fleet.vehicles)
    )
    (directory / "TukTuk Driver.csv").write_text(
        data_export_csv(
            "TukTuk Driver",
            DRIVER_COLUMNS,
            fleet.drivers,
            child=("Driver Deposit Transaction", "deposit_transactions", DEPOSIT_COLUMNS),
        )
    )
    (directory / "TukTuk Substitute Driver.csv").write_text(
        data_export_csv("TukTuk Substitute Driver", SUBSTITUTE_COLUMNS, fleet.substitutes)
    )
    (directory / "TukTuk Transaction.csv").write_text(
        data_export_csv("TukTuk Transaction", TRANSACTION_COLUMNS, fleet.transactions)
    )
    return directory
