"""Onboard a fleet from a spreadsheet saved as CSV.

The whole file is checked before anything is written, and then written in one database
transaction: an operator fixing a spreadsheet must never be left with half a fleet imported and
no way to tell which half. Every problem is reported with the line number the spreadsheet shows
(the header is line 1), the column and the reason, so all of them can be fixed in one go.

Re-importing the same or an edited file updates drivers and vehicles, it never duplicates them.
A driver is matched by `driver_id`; without one, by the M-Pesa number or, failing that, as the
current driver of the row's vehicle. Balances are never touched by an import.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import DatabaseError, transaction
from django.utils import timezone

from tuktuk.core import events
from tuktuk.fleet.assignments import assignments_sync
from tuktuk.fleet.balance import driver_left_to_target_refresh
from tuktuk.fleet.forms import NOT_UTF8, FleetRowForm, undecodable_byte
from tuktuk.fleet.models import Driver, Vehicle
from tuktuk.fleet.services import driver_ids_next

# The form's fields are the columns, in the order the help and the problems list them.
COLUMNS = tuple(FleetRowForm.base_fields)
REQUIRED_COLUMNS = tuple(name for name, f in FleetRowForm.base_fields.items() if f.required)
OVERRIDE_COLUMNS = ("daily_target", "fare_percentage")
_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True)
class Problem:
    # None: about the file as a whole.
    line: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


def _problem_order(problem: Problem) -> tuple[int, int]:
    column = COLUMNS.index(problem.column) if problem.column in COLUMNS else -1
    return (problem.line or 0, column)


class ImportRejected(Exception):
    """The file was refused as a whole; nothing was written."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=_problem_order)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class FleetRow:
    """One data line, normalised by FleetRowForm: the cells that are valid (every one of them
    on a line without problems; a bad or empty optional cell is None)."""

    line: int
    driver_id: str | None = None
    driver_name: str | None = None
    mpesa_number: str | None = None
    vehicle_id: str | None = None
    mpesa_account: str | None = None
    daily_target: Decimal | None = None
    fare_percentage: Decimal | None = None


def _present(value: str | None) -> str:
    # Only a file without problems is written, and there every required cell is present.
    assert value is not None
    return value


@dataclass
class ParsedFleet:
    # Every data line, for checks that are worth making even on a line with other problems.
    lines: list[FleetRow]
    # The lines without any problem.
    rows: list[FleetRow]
    problems: list[Problem]
    # Optional override columns the header names. An absent column leaves existing overrides
    # alone; a present column with an empty cell clears the override (back to the global value).
    override_columns: frozenset[str]


@dataclass
class ImportResult:
    drivers_created: list[str] = field(default_factory=list)
    drivers_updated: list[str] = field(default_factory=list)
    drivers_unchanged: int = 0
    vehicles_created: list[str] = field(default_factory=list)
    vehicles_updated: list[str] = field(default_factory=list)
    vehicles_unchanged: int = 0
    # Drivers outside the file whose vehicle the file gave to someone else.
    drivers_unassigned: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary_lines(self) -> list[str]:
        lines = [
            f"Drivers: {len(self.drivers_created)} created, {len(self.drivers_updated)} updated, "
            f"{self.drivers_unchanged} unchanged.",
            f"Vehicles: {len(self.vehicles_created)} created, {len(self.vehicles_updated)} "
            f"updated, {self.vehicles_unchanged} unchanged.",
        ]
        if self.drivers_unassigned:
            lines.append(
                "Now without a vehicle (their vehicle went to another driver): "
                + ", ".join(self.drivers_unassigned)
            )
        if self.dry_run:
            lines.append("Dry run: the file is valid; nothing was written.")
        return lines


# ---------------------------------------------------------------------------------------------
# Reading and checking the file (no database)


def _not_utf8(byte: int) -> str:
    return NOT_UTF8 % {"byte": byte}


def _delimiter(first_line: str) -> str:
    # Spreadsheets in locales with a decimal comma save CSV with semicolons.
    counts = {delimiter: first_line.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _check_line(line: int, cells: dict[str, str]) -> tuple[FleetRow, list[Problem]]:
    """Check the line with FleetRowForm: every cell on its own, so one bad cell does not hide
    the problems of the others, and the valid cells are kept for the checks across lines."""
    form = FleetRowForm(cells)
    problems = [Problem(line, column, str(errors[0])) for column, errors in form.errors.items()]
    values = {name: form.cleaned_data.get(name) for name in COLUMNS}
    return FleetRow(line, **values), problems


def _check_header(header: Sequence[str]) -> tuple[dict[int, str], list[Problem]]:
    """Map cell positions to column names; an unnamed column is allowed only while empty."""
    problems: list[Problem] = []
    positions: dict[int, str] = {}
    seen: set[str] = set()
    for index, raw in enumerate(header):
        byte = undecodable_byte(raw)
        if byte is not None:
            problems.append(Problem(1, f"#{index + 1}", _not_utf8(byte)))
            continue
        name = raw.strip().lower()
        if not name:
            continue
        if name not in COLUMNS:
            problems.append(
                Problem(
                    1,
                    raw.strip(),
                    "unknown column; the columns are: " + ", ".join(COLUMNS),
                )
            )
        elif name in seen:
            problems.append(Problem(1, name, "the column appears twice"))
        else:
            seen.add(name)
            positions[index] = name
    for name in REQUIRED_COLUMNS:
        if name not in seen:
            problems.append(Problem(1, name, "required column is missing from the header row"))
    return positions, problems


def _find_duplicates(rows: list[FleetRow]) -> list[Problem]:
    problems: list[Problem] = []
    keys = {
        "driver_id": lambda row: row.driver_id,
        "vehicle_id": lambda row: row.vehicle_id and row.vehicle_id.upper(),
        "mpesa_account": lambda row: row.mpesa_account,
    }
    for column, key in keys.items():
        first_line: dict[str, int] = {}
        for row in rows:
            value = key(row)
            if value is None:
                continue
            if value in first_line:
                what = getattr(row, column)
                hint = (
                    " (accounts are matched ignoring case and spaces)"
                    if column == "mpesa_account"
                    else ""
                )
                problems.append(
                    Problem(
                        row.line, column, f"{what!r} is already on line {first_line[value]}{hint}"
                    )
                )
            else:
                first_line[value] = row.line
    return problems


def fleet_csv_parse(*, data: bytes) -> ParsedFleet:
    """Read and check the file on its own; the database is checked when importing."""
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        return ParsedFleet(
            [],
            [],
            [
                Problem(
                    None, None, "this is a spreadsheet workbook, not CSV; save it as 'CSV UTF-8'"
                )
            ],
            frozenset(),
        )
    # surrogateescape keeps undecodable bytes, so each one can be reported on its own line
    # and column instead of failing the whole read; utf-8-sig drops Excel's byte order mark.
    text = data.decode("utf-8-sig", errors="surrogateescape")
    if not text.strip():
        return ParsedFleet(
            [],
            [],
            [
                Problem(
                    1,
                    None,
                    "the file is empty; expected a header row ("
                    + ", ".join(COLUMNS)
                    + ") and one line per driver",
                )
            ],
            frozenset(),
        )
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=_delimiter(text.partition("\n")[0])
    )
    lines: list[FleetRow] = []
    problems: list[Problem] = []
    try:
        header = next(reader)
        positions, header_problems = _check_header(header)
        if header_problems:
            return ParsedFleet([], [], header_problems, frozenset())
        data_lines = 0
        # Line numbers are records, as a spreadsheet numbers its rows (header = 1).
        for line, record in enumerate(reader, start=2):
            if not any(cell.strip() for cell in record):
                continue  # spreadsheets leave blank rows and trailing ",,,,,"
            data_lines += 1
            extra = [
                cell for index, cell in enumerate(record) if index not in positions and cell.strip()
            ]
            if extra:
                problems.append(
                    Problem(line, None, f"has a value in a column without a name: {extra[0]!r}")
                )
                continue
            cells = {
                name: record[index] if index < len(record) else ""
                for index, name in positions.items()
            }
            values, line_problems = _check_line(line, cells)
            problems.extend(line_problems)
            lines.append(values)
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, None, f"not a valid CSV file: {exc}"))
        return ParsedFleet([], [], problems, frozenset())
    if data_lines == 0:
        problems.append(Problem(2, None, "no drivers: the file has a header row but no data lines"))
    problems.extend(_find_duplicates(lines))
    bad_lines = {problem.line for problem in problems}
    rows = [values for values in lines if values.line not in bad_lines]
    present = frozenset(name for name in positions.values() if name in OVERRIDE_COLUMNS)
    return ParsedFleet(lines, rows, problems, present)


# ---------------------------------------------------------------------------------------------
# Matching against the database, then writing


@dataclass
class _Plan:
    vehicle_by_line: dict[int, Vehicle | None]
    # None: a new driver, whose id is in new_driver_ids.
    driver_by_line: dict[int, Driver | None]
    new_driver_ids: dict[int, str]
    # The driver each vehicle has in the database, by vehicle pk.
    holder_by_vehicle: dict[int, Driver]


def _match_vehicles(
    lines: list[FleetRow], vehicles: list[Vehicle]
) -> tuple[dict[int, Vehicle | None], list[Problem]]:
    problems: list[Problem] = []
    exact = {vehicle.vehicle_id: vehicle for vehicle in vehicles}
    folded: dict[str, list[Vehicle]] = defaultdict(list)
    for vehicle in vehicles:
        folded[vehicle.vehicle_id.upper()].append(vehicle)
    by_account = {Vehicle.canonical_account(vehicle.mpesa_account): vehicle for vehicle in vehicles}
    matched: dict[int, Vehicle | None] = {}
    for row in lines:
        if row.vehicle_id is None:
            continue
        # Matched ignoring case: MariaDB's collation would refuse TUK-001 next to tuk-001 anyway.
        found = exact.get(row.vehicle_id)
        if found is None:
            similar = folded.get(row.vehicle_id.upper(), [])
            if len(similar) > 1:
                names = ", ".join(sorted(v.vehicle_id for v in similar))
                problems.append(
                    Problem(
                        row.line,
                        "vehicle_id",
                        f"matches several vehicles ({names}); use the exact id",
                    )
                )
                continue
            found = similar[0] if similar else None
        matched[row.line] = found
        owner = by_account.get(row.mpesa_account) if row.mpesa_account else None
        if owner is not None and owner is not found:
            problems.append(
                Problem(
                    row.line,
                    "mpesa_account",
                    f"{row.mpesa_account!r} is already the account of vehicle {owner.vehicle_id} "
                    "in the database",
                )
            )
    return matched, problems


def _match_drivers(
    rows: list[FleetRow], vehicle_by_line: dict[int, Vehicle | None], drivers: list[Driver]
) -> tuple[dict[int, Driver | None], dict[int, Driver], list[Problem]]:
    """Decide which existing driver (or a new one) each line is.

    Explicit driver ids are claimed first, so a line without an id can never take a driver that
    another line names. Then a line is matched by M-Pesa number (the person), and only then by
    being the current driver of the line's vehicle (the same person, new number). A driver is
    matched by at most one line.
    """
    problems: list[Problem] = []
    by_driver_id = {driver.driver_id: driver for driver in drivers}
    by_number: dict[str, list[Driver]] = defaultdict(list)
    for driver in drivers:
        by_number[driver.mpesa_number].append(driver)
    holder_by_vehicle = {driver.vehicle_id: driver for driver in drivers if driver.vehicle_id}
    resolved: dict[int, Driver | None] = {}
    claimed: dict[int, int] = {}  # driver pk -> line

    def claim(row: FleetRow, driver: Driver | None) -> None:
        resolved[row.line] = driver
        if driver is not None:
            claimed[driver.pk] = row.line

    def holder(row: FleetRow) -> Driver | None:
        vehicle = vehicle_by_line.get(row.line)
        return holder_by_vehicle.get(vehicle.pk) if vehicle is not None else None

    def unclaimed_by_number(row: FleetRow) -> list[Driver]:
        return [d for d in by_number.get(_present(row.mpesa_number), []) if d.pk not in claimed]

    for row in rows:
        if row.driver_id is not None:
            claim(row, by_driver_id.get(row.driver_id))
    pending = [row for row in rows if row.driver_id is None]
    for row in list(pending):
        current = holder(row)
        if current is not None and current in unclaimed_by_number(row):
            claim(row, current)
            pending.remove(row)
    wanted: dict[int, list[FleetRow]] = defaultdict(list)
    for row in list(pending):
        candidates = unclaimed_by_number(row)
        if len(candidates) > 1:
            ids = ", ".join(sorted(d.driver_id for d in candidates))
            problems.append(
                Problem(
                    row.line,
                    "mpesa_number",
                    f"several drivers have this number ({ids}); give the driver_id",
                )
            )
            pending.remove(row)
        elif candidates:
            wanted[candidates[0].pk].append(row)
            pending.remove(row)
    for rows_for_driver in wanted.values():
        first, *others = rows_for_driver
        driver = unclaimed_by_number(first)[0]
        claim(first, driver)
        for row in others:
            problems.append(
                Problem(
                    row.line,
                    "mpesa_number",
                    f"this number is driver {driver.driver_id}'s, who is already on line "
                    f"{first.line}; give the driver_id to tell the lines apart",
                )
            )
    for row in pending:
        current = holder(row)
        claim(row, current if current is not None and current.pk not in claimed else None)
    return resolved, holder_by_vehicle, problems


def _plan(parsed: ParsedFleet) -> tuple[_Plan, list[Problem]]:
    rows = parsed.rows
    vehicles = list(Vehicle.objects.all())
    drivers = list(Driver.objects.all())
    vehicle_by_line, problems = _match_vehicles(parsed.lines, vehicles)
    driver_by_line, holder_by_vehicle, driver_problems = _match_drivers(
        rows, vehicle_by_line, drivers
    )
    problems.extend(driver_problems)
    new_lines = [row for row in rows if driver_by_line.get(row.line) is None]
    explicit = {row.line: row.driver_id for row in new_lines if row.driver_id is not None}
    implicit = [row for row in new_lines if row.driver_id is None]
    allocated = driver_ids_next(count=len(implicit), taken=set(explicit.values()))
    new_driver_ids = {
        **explicit,
        **{row.line: id_ for row, id_ in zip(implicit, allocated, strict=True)},
    }
    return _Plan(vehicle_by_line, driver_by_line, new_driver_ids, holder_by_vehicle), problems


def _write(rows: list[FleetRow], plan: _Plan, override_columns: frozenset[str]) -> ImportResult:
    result = ImportResult()
    now = timezone.now()

    new_vehicles: list[Vehicle] = []
    changed_vehicles: list[Vehicle] = []
    for row in rows:
        vehicle = plan.vehicle_by_line[row.line]
        if vehicle is None:
            new_vehicles.append(
                Vehicle(
                    vehicle_id=_present(row.vehicle_id), mpesa_account=_present(row.mpesa_account)
                )
            )
        elif vehicle.mpesa_account != row.mpesa_account:
            vehicle.mpesa_account = _present(row.mpesa_account)
            changed_vehicles.append(vehicle)
    Vehicle.objects.bulk_update(changed_vehicles, ["mpesa_account"], batch_size=200)
    Vehicle.objects.bulk_create(new_vehicles, batch_size=200)
    if any(vehicle.pk is None for vehicle in new_vehicles):
        # Backends that cannot return ids from a bulk insert.
        created = Vehicle.objects.in_bulk(
            [v.vehicle_id for v in new_vehicles], field_name="vehicle_id"
        )
        new_vehicles = [created[vehicle.vehicle_id] for vehicle in new_vehicles]
    new_by_id = {vehicle.vehicle_id: vehicle for vehicle in new_vehicles}
    vehicle_for_line = {
        row.line: plan.vehicle_by_line[row.line] or new_by_id[_present(row.vehicle_id)]
        for row in rows
    }
    result.vehicles_created = [vehicle.vehicle_id for vehicle in new_vehicles]
    result.vehicles_updated = [vehicle.vehicle_id for vehicle in changed_vehicles]
    result.vehicles_unchanged = len(rows) - len(new_vehicles) - len(changed_vehicles)

    # One vehicle per driver is a unique column, checked row by row on PostgreSQL: every
    # driver losing a vehicle of the file lets go of it before anyone is given one.
    claimed = {driver.pk for driver in plan.driver_by_line.values() if driver is not None}
    releasing: list[Driver] = []
    for row in rows:
        vehicle = plan.vehicle_by_line[row.line]
        current = plan.holder_by_vehicle.get(vehicle.pk) if vehicle is not None else None
        if current is not None and current is not plan.driver_by_line[row.line]:
            releasing.append(current)
    if releasing:
        Driver.objects.filter(pk__in=[driver.pk for driver in releasing]).update(
            vehicle=None, updated_at=now
        )
    result.drivers_unassigned = sorted(d.driver_id for d in releasing if d.pk not in claimed)

    attnames = ["name", "mpesa_number", "vehicle_id", *sorted(override_columns)]
    changed_drivers: list[Driver] = []
    new_drivers: list[Driver] = []
    target_changed: list[str] = []
    for row in rows:
        # By attname: reading driver.vehicle would fetch each vehicle with its own query.
        values: dict[str, object] = {
            "name": row.driver_name,
            "mpesa_number": row.mpesa_number,
            "vehicle_id": vehicle_for_line[row.line].pk,
            "daily_target": row.daily_target,
            "fare_percentage": row.fare_percentage,
        }
        driver = plan.driver_by_line[row.line]
        if driver is None:
            new_drivers.append(Driver(driver_id=plan.new_driver_ids[row.line], **values))
            continue
        changes = [name for name in attnames if getattr(driver, name) != values[name]]
        if not changes:
            continue
        if "daily_target" in changes:
            target_changed.append(driver.driver_id)
        for name in changes:
            setattr(driver, name, values[name])
        driver.updated_at = now
        changed_drivers.append(driver)
    fields = ["vehicle" if name == "vehicle_id" else name for name in attnames]
    Driver.objects.bulk_update(changed_drivers, [*fields, "updated_at"], batch_size=200)
    Driver.objects.bulk_create(new_drivers, batch_size=200)
    result.drivers_created = [driver.driver_id for driver in new_drivers]
    result.drivers_updated = [driver.driver_id for driver in changed_drivers]
    result.drivers_unchanged = len(rows) - len(new_drivers) - len(changed_drivers)
    driver_left_to_target_refresh(driver_ids=[*result.drivers_created, *target_changed])
    # The assignment history follows the vehicles the file gave (or took from) each driver.
    moved = {d.driver_id for d in releasing} | set(result.drivers_created)
    moved |= {d.driver_id for d in changed_drivers}
    assignments_sync(
        driver_pks=list(Driver.objects.filter(driver_id__in=moved).values_list("pk", flat=True)),
        at=now,
    )
    return result


def fleet_import(*, data: bytes, dry_run: bool = False, actor: str = "") -> ImportResult:
    """Import a fleet CSV whole, or raise ImportRejected listing every problem. A real import
    is recorded in the event log with its actor, in the same transaction."""
    parsed = fleet_csv_parse(data=data)
    try:
        with transaction.atomic():
            # Read inside the transaction that writes: on SQLite (BEGIN IMMEDIATE) nobody can
            # write in between; on PostgreSQL and MariaDB a concurrent change that conflicts
            # with the file hits a unique constraint and rolls the whole import back.
            plan, problems = _plan(parsed)
            if parsed.problems or problems:
                raise ImportRejected([*parsed.problems, *problems])
            result = _write(parsed.rows, plan, parsed.override_columns)
            if dry_run:
                result.dry_run = True
                transaction.set_rollback(True)
            else:
                events.event_record(
                    title=events.EventTitle.FLEET_IMPORTED,
                    actor=actor,
                    message=f"fleet import by {actor or 'unknown'}: "
                    + "; ".join(result.summary_lines()),
                    data={
                        "drivers_created": result.drivers_created,
                        "drivers_updated": result.drivers_updated,
                        "vehicles_created": result.vehicles_created,
                        "vehicles_updated": result.vehicles_updated,
                    },
                )
    except DatabaseError as exc:
        # The checks above mirror the constraints, so this means the fleet changed while the
        # file was being imported (or a rule the checks do not know about).
        raise ImportRejected(
            [
                Problem(
                    None,
                    None,
                    f"the database refused the import ({exc}); nothing was imported. If someone "
                    "was editing the fleet at the same time, import the file again.",
                )
            ]
        ) from exc
    return result
