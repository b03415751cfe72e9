"""Reading a Frappe site's data export of the legacy doctypes into plain records.

What Frappe produces, and this reads:

- **Data Export** (Setup > Data Export, `frappe.core.doctype.data_export`): CSV with a heading
  block (`DocType:`, `Column Labels:`, `Column Name:`, `Mandatory:`, `Type:`, `Info:`), the
  first column blank, names written in quotes (`"DRV-112001"`), a child table's rows in the
  columns after a `~`, and dates in the site's date format (named in the `Info:` row);
- the **list view's Export** (`frappe.core.doctype.data_import.exporter`): CSV with one header
  row of labels (`ID`, `Driver Name`, `Transaction Date (Deposit Transactions)`), a child
  table's further rows on lines of their own; a header of field names works too;
- **`/api/resource`** answers, JSON: `{"data": [...]}` of a list (`?fields=["*"]`), `{"data":
  {...}}` of one document (child tables inside, e.g. `deposit_transactions`), a bare list, or
  one object of lists keyed by doctype.

Which doctype a file holds: the Data Export says it; otherwise the file's name
(`TukTuk Driver.csv`, `tuktuk_driver.json`, …), or `DocType=path` on the command line, or a
`doctype` key in each JSON document. Values come out as text (JSON numbers exactly: parsed as
decimals), dates as ISO; what they mean is checked by backoffice.legacy_import.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

SETTINGS = "TukTuk Settings"
VEHICLE = "TukTuk Vehicle"
DRIVER = "TukTuk Driver"
TRANSACTION = "TukTuk Transaction"
DEPOSIT = "Driver Deposit Transaction"
SUBSTITUTE = "TukTuk Substitute Driver"
DOCTYPES = (SETTINGS, VEHICLE, DRIVER, TRANSACTION, DEPOSIT, SUBSTITUTE)
# The driver's child table of deposit rows, as the TukTuk Driver doctype names it.
DEPOSIT_TABLE = "deposit_transactions"
DEPOSIT_TABLE_LABEL = "Deposit Transactions"

# The fields the import reads, with their labels in the legacy doctypes (list-view exports
# head their columns with labels). Other columns are ignored.
FIELDS: dict[str, dict[str, str]] = {
    SETTINGS: {
        "global_daily_target": "Global Daily Target",
        "global_fare_percentage": "Global Fare Percentage",
        "enable_target_sharing": "Enable Target Sharing System",
        "instant_payouts_enabled": "Enable Instant Driver Payouts",
        "operating_hours_start": "Operating Hours Start",
        "operating_hours_end": "Operating Hours End",
        "bonus_enabled": "Bonus Enabled",
        "bonus_amount": "Bonus Amount",
        "mpesa_paybill": "Mpesa Paybill",
    },
    VEHICLE: {
        "name": "ID",
        "tuktuk_id": "TukTuk ID",
        "mpesa_account": "Mpesa Account",
        "status": "Status",
        "assigned_driver": "Assigned Driver",
    },
    DRIVER: {
        "name": "ID",
        "driver_name": "Driver Name",
        "driver_first_name": "First Name",
        "driver_last_name": "Last Name",
        "mpesa_number": "Mpesa Phone Number",
        "assigned_tuktuk": "Assigned TukTuk",
        "target_sharing_override": "Target Sharing Override",
        "daily_target": "Individual Daily Target",
        "is_rollover_target": "Is Rollover Target",
        "fare_percentage": "Individual Fare Percentage",
        "instant_payout_override": "Instant Payout Preference",
        "current_balance": "Current Target Balance",
        "left_to_target": "Left to target",
        "consecutive_misses": "Consecutive Target Misses",
        "preferred_day_off": "Preferred Day Off",
        "deposit_required": "Deposit Required",
        "initial_deposit_amount": "Initial Deposit Amount",
        "current_deposit_balance": "Current Deposit Balance",
        "allow_target_deduction_from_deposit": "Allow Target Deduction from Deposit",
        "exit_date": "Exit Date",
        "sunny_id": "Sunny ID",
    },
    TRANSACTION: {
        "name": "ID",
        "transaction_id": "Mpesa Transaction ID",
        "transaction_type": "Transaction Type",
        "tuktuk": "TukTuk",
        "driver": "Regular Driver",
        "substitute_driver": "Substitute Driver",
        "amount": "Amount",
        "driver_share": "Driver Share",
        "target_contribution": "Target Contribution",
        "customer_phone": "Customer Phone",
        "timestamp": "Transaction Time",
        "payment_status": "Payment Status",
        "b2c_payment_sent": "B2C Payment Sent",
    },
    DEPOSIT: {
        "name": "ID",
        "parent": "Parent",
        "idx": "No.",
        "transaction_date": "Transaction Date",
        "transaction_type": "Transaction Type",
        "amount": "Amount",
        "transaction_reference": "Reference (Mpesa/Receipt #)",
        "balance_after_transaction": "Balance After Transaction",
        "description": "Description/Notes",
        "approved_by": "Approved By",
    },
    SUBSTITUTE: {
        "name": "ID",
        "first_name": "First Name",
        "last_name": "Last Name",
        "phone_number": "Phone Number",
        "mpesa_number": "Mpesa Phone Number",
        "status": "Status",
        "daily_target": "Daily Target (KSH)",
        "fare_percentage_to_driver": "Fare Percentage to Driver",
        "target_balance": "Today's Target Balance",
        "preferred_day_off": "Preferred Day Off",
    },
}
# Fields whose Data Export value is written in the site's date format.
DATE_FIELDS = {"transaction_date", "exit_date"}
DATETIME_FIELDS = {"timestamp"}

_NAME_SUFFIX = re.compile(r"\s*\(\d+\)$")  # "TukTuk Driver (1).csv", as browsers save twice


def doctype_named(text: str) -> str | None:
    """The legacy doctype a file name or key names: "TukTuk Driver", "tuktuk_driver",
    "Driver" (the short names the issue of the switch uses), in any case."""
    words = " ".join(re.split(r"[\s_\-]+", _NAME_SUFFIX.sub("", text).strip().lower()))
    for doctype in DOCTYPES:
        full = doctype.lower()
        short = full.removeprefix("tuktuk ")
        if words in (full, short, full.replace(" ", ""), short.replace(" ", "")):
            return doctype
    return None


@dataclass(frozen=True)
class ReadProblem:
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class Record:
    """One legacy document (or child row): its fields as text, and where it was read."""

    doctype: str
    where: str
    values: dict[str, str]

    def get(self, name: str) -> str:
        return self.values.get(name, "")


@dataclass
class ExportRead:
    records: dict[str, list[Record]] = field(default_factory=lambda: {d: [] for d in DOCTYPES})
    problems: list[ReadProblem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def add(self, record: Record) -> None:
        self.records[record.doctype].append(record)


def as_text(value: Any) -> str:
    """A JSON or CSV value as the text the forms read (numbers exactly, booleans as 1/0)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | str):
        return str(value)
    raise TypeError(type(value).__name__)


# --- CSV -----------------------------------------------------------------------------------


def _decode(data: bytes, where: str, read: ExportRead) -> str | None:
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        read.problems.append(
            ReadProblem(where, "this is a spreadsheet workbook: export CSV (or JSON) instead")
        )
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        read.problems.append(
            ReadProblem(where, f"not UTF-8 text (byte {exc.start}): export it again as CSV")
        )
        return None


def _csv_rows(text: str) -> list[list[str]]:
    first = text.partition("\n")[0]
    delimiter = max((",", ";", "\t"), key=first.count) if first else ","
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def _unquote(value: str) -> str:
    """Data Export writes names in quotes ("DRV-112001") so spreadsheets keep them as text."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].strip()
    return value


_DATE_TOKENS = (("yyyy", "%Y"), ("mm", "%m"), ("dd", "%d"))


def _strptime_format(frappe_format: str) -> str | None:
    """Frappe's date_format (dd-mm-yyyy, mm/dd/yyyy, yyyy-mm-dd, dd.mm.yyyy…) for strptime."""
    text = frappe_format.strip().lower()
    if not re.fullmatch(r"(dd|mm|yyyy)[-/.](dd|mm|yyyy)[-/.](dd|mm|yyyy)", text):
        return None
    for token, directive in _DATE_TOKENS:
        text = text.replace(token, directive)
    return text


def _iso(value: str, date_format: str | None, *, with_time: bool) -> str:
    """A Data Export date (or datetime) in ISO; left as it is when it does not read (the form
    then says what is wrong with it)."""
    text = value.strip()
    if not text or not date_format:
        return text
    day_text, _, time_text = text.partition(" ")
    try:
        day = dt.datetime.strptime(day_text, date_format).date()
    except ValueError:
        return text
    return f"{day.isoformat()} {time_text}".strip() if with_time else day.isoformat()


# The heading rows of a Data Export; the data starts after the last of them.
_HEADING_ENDS = (
    "Column Name:",
    "Mandatory:",
    "Type:",
    "Info:",
    "Start entering data below this line",
)


def _read_data_export(rows: list[list[str]], where: str, read: ExportRead) -> None:
    heading = {row[0].strip(): index for index, row in enumerate(rows) if row and row[0].strip()}
    table_row = rows[heading["DocType:"]] if "DocType:" in heading else []
    fields = rows[heading["Column Name:"]]
    types = rows[heading["Type:"]] if "Type:" in heading else []
    infos = rows[heading["Info:"]] if "Info:" in heading else []
    start = 1 + max(heading.get(marker, -1) for marker in _HEADING_ENDS)
    # Column groups: the main doctype from position 1, each child table after a "~".
    groups: list[tuple[str | None, int, int]] = []  # (doctype, first position, end)
    begin = 1
    for position in range(1, len(fields) + 1):
        if position == len(fields) or fields[position].strip() == "~":
            named = table_row[begin].strip() if begin < len(table_row) else ""
            groups.append((doctype_named(named) if named else None, begin, position))
            begin = position + 1
    if not groups or groups[0][0] is None:
        read.problems.append(ReadProblem(where, "the DocType: row names no legacy doctype"))
        return
    main = groups[0][0]
    columns: dict[int, tuple[str, str, str | None]] = {}  # position -> doctype, field, format
    for doctype, first, end in groups:
        if doctype is None:
            continue
        wanted = FIELDS[doctype]
        for position in range(first, end):
            name = fields[position].strip()
            if name not in wanted:
                continue
            kind = types[position].strip() if position < len(types) else ""
            info = infos[position].strip() if position < len(infos) else ""
            date_format = _strptime_format(info) if kind in ("Date", "Datetime") else None
            if kind in ("Date", "Datetime") and date_format is None and info:
                read.problems.append(
                    ReadProblem(where, f"column {name}: date format {info!r} is not one we read")
                )
            columns[position] = (doctype, name, date_format)
    parent: dict[str, str] | None = None
    for line, row in enumerate(rows[start:], start=start + 1):
        cells = {p: (row[p] if p < len(row) else "") for p in columns}
        by_doctype: dict[str, dict[str, str]] = {}
        for position, (doctype, name, date_format) in columns.items():
            value = cells[position]
            if name == "name":
                value = _unquote(value)
            elif name in DATE_FIELDS or name in DATETIME_FIELDS:
                value = _iso(value, date_format, with_time=name in DATETIME_FIELDS)
            by_doctype.setdefault(doctype, {})[name] = value.strip()
        for doctype, values in by_doctype.items():
            if not any(values.values()):
                continue
            if doctype == main:
                parent = values
                read.add(Record(doctype, f"{where} line {line}", values))
            elif parent is None:
                read.problems.append(
                    ReadProblem(f"{where} line {line}", f"a {doctype} row before any {main}")
                )
            else:
                values.setdefault("parent", parent.get("name", ""))
                read.add(Record(doctype, f"{where} line {line}", values))


def _header_map(header: list[str], doctype: str) -> dict[int, tuple[str, str]]:
    """Header cells (labels or field names) to (doctype, field) for the columns we read."""
    mapped: dict[int, tuple[str, str]] = {}
    own = FIELDS[doctype]
    labels = {label.lower(): name for name, label in own.items()}
    child_labels = {
        f"{label} ({DEPOSIT_TABLE_LABEL})".lower(): name for name, label in FIELDS[DEPOSIT].items()
    }
    for index, cell in enumerate(header):
        text = cell.strip()
        key = text.lower()
        if text in own:
            mapped[index] = (doctype, text)
        elif key in labels:
            mapped[index] = (doctype, labels[key])
        elif doctype == DRIVER and key in child_labels:
            mapped[index] = (DEPOSIT, child_labels[key])
        elif doctype == DRIVER and key.startswith(f"{DEPOSIT_TABLE}."):
            name = text.split(".", 1)[1]
            if name in FIELDS[DEPOSIT]:
                mapped[index] = (DEPOSIT, name)
    return mapped


def _read_plain_csv(rows: list[list[str]], doctype: str, where: str, read: ExportRead) -> None:
    header_at = next((i for i, row in enumerate(rows) if any(c.strip() for c in row)), None)
    if header_at is None:
        read.problems.append(ReadProblem(where, "the file is empty"))
        return
    columns = _header_map(rows[header_at], doctype)
    if not any(d == doctype for d, _ in columns.values()):
        read.problems.append(
            ReadProblem(
                f"{where} line {header_at + 1}",
                f"no column of a {doctype} export (e.g. {', '.join(list(FIELDS[doctype])[:3])})",
            )
        )
        return
    parent: dict[str, str] | None = None
    for line, row in enumerate(rows[header_at + 1 :], start=header_at + 2):
        by_doctype: dict[str, dict[str, str]] = {}
        for index, (kind, name) in columns.items():
            by_doctype.setdefault(kind, {})[name] = (row[index] if index < len(row) else "").strip()
        own = by_doctype.get(doctype, {})
        if any(own.values()):
            parent = own
            read.add(Record(doctype, f"{where} line {line}", own))
        child = by_doctype.get(DEPOSIT, {}) if doctype == DRIVER else {}
        if any(child.values()):
            if parent is None:
                read.problems.append(
                    ReadProblem(f"{where} line {line}", "a deposit row before any driver")
                )
                continue
            if not child.get("parent"):
                child["parent"] = parent.get("name", "")
            read.add(Record(DEPOSIT, f"{where} line {line}", child))


def read_csv(data: bytes, *, where: str, doctype: str | None, read: ExportRead) -> None:
    text = _decode(data, where, read)
    if text is None:
        return
    try:
        rows = _csv_rows(text)
    except csv.Error as exc:
        read.problems.append(ReadProblem(where, f"not a valid CSV file: {exc}"))
        return
    if any(row and row[0].strip() == "Column Name:" for row in rows):
        _read_data_export(rows, where, read)
    elif doctype is None:
        read.problems.append(
            ReadProblem(
                where,
                "cannot tell which doctype this is: name the file after it (TukTuk Driver.csv) "
                "or pass it as 'TukTuk Driver=FILE'",
            )
        )
    else:
        _read_plain_csv(rows, doctype, where, read)


# --- JSON ----------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _documents(payload: Any, doctype: str | None) -> Iterator[tuple[str | None, Any]]:
    """(doctype or None, document) for every document of an /api/resource answer."""
    if isinstance(payload, list):
        for item in payload:
            yield doctype, item
    elif isinstance(payload, dict):
        if set(payload) & {"data", "message"} and len(payload) <= 2:
            inner = payload.get("data", payload.get("message"))
            yield from _documents(inner, doctype)
        elif payload and all(doctype_named(key) for key in payload):
            for key, value in payload.items():
                yield from _documents(value, doctype_named(key))
        else:
            yield doctype, payload
    else:
        yield doctype, payload


def _flat(document: dict[str, Any], wanted: Iterable[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in wanted:
        if name in document:
            values[name] = as_text(document[name]).strip()
    return values


def read_json(data: bytes, *, where: str, doctype: str | None, read: ExportRead) -> None:
    text = _decode(data, where, read)
    if text is None:
        return
    try:
        payload = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        read.problems.append(ReadProblem(where, f"not valid JSON: {exc}"))
        return
    for number, (named, document) in enumerate(_documents(payload, doctype), start=1):
        place = f"{where} document {number}"
        if not isinstance(document, dict):
            read.problems.append(ReadProblem(place, "not a JSON object"))
            continue
        own = doctype_named(str(document.get("doctype", ""))) or named
        if own is None:
            read.problems.append(
                ReadProblem(
                    place,
                    "cannot tell which doctype this is: name the file after it "
                    "(TukTuk Driver.json), or give each document its doctype",
                )
            )
            continue
        try:
            values = _flat(document, FIELDS[own])
            rows = document.get(DEPOSIT_TABLE) if own == DRIVER else None
            children = []
            for index, child in enumerate(rows if isinstance(rows, list) else [], start=1):
                if not isinstance(child, dict):
                    raise TypeError(f"{DEPOSIT_TABLE} row {index}")
                child_values = _flat(child, FIELDS[DEPOSIT])
                child_values.setdefault("parent", values.get("name", ""))
                child_values.setdefault("idx", str(index))
                children.append(child_values)
        except TypeError as exc:
            read.problems.append(ReadProblem(place, f"a value is not text or a number ({exc})"))
            continue
        label = values.get("name") or values.get("transaction_id") or ""
        read.add(Record(own, f"{place}" + (f" ({label})" if label else ""), values))
        for index, child_values in enumerate(children, start=1):
            read.add(Record(DEPOSIT, f"{place} {DEPOSIT_TABLE} row {index}", child_values))


# --- files ---------------------------------------------------------------------------------


def export_files(arguments: Iterable[str]) -> list[tuple[Path, str | None]]:
    """The files named (a directory: its .csv and .json files), each with the doctype given
    as `DocType=path` or read off its name."""
    found: list[tuple[Path, str | None]] = []
    for argument in arguments:
        given, equals, rest = argument.partition("=")
        named = doctype_named(given) if equals else None
        path = Path(rest if named else argument)
        paths = (
            sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".json"))
            if path.is_dir()
            else [path]
        )
        for file in paths:
            found.append((file, named or doctype_named(file.stem)))
    return found


def export_read(arguments: Iterable[str]) -> ExportRead:
    read = ExportRead()
    for path, doctype in export_files(arguments):
        where = path.name
        read.files.append(str(path))
        try:
            data = path.read_bytes()
        except OSError as exc:
            read.problems.append(ReadProblem(where, f"cannot read it: {exc.strerror or exc}"))
            continue
        if path.suffix.lower() == ".json":
            read_json(data, where=where, doctype=doctype, read=read)
        else:
            read_csv(data, where=where, doctype=doctype, read=read)
    if not read.files:
        read.problems.append(ReadProblem("the command line", "no export file given"))
    return read
