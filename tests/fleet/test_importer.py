"""The fleet CSV importer: a bad file is refused whole, a good one is imported idempotently."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tuktuk.fleet.importer import ImportRejected, ImportResult, fleet_import
from tuktuk.fleet.models import Driver, FleetSettings, Vehicle

HEADER = "driver_id,driver_name,mpesa_number,vehicle_id,mpesa_account,daily_target,fare_percentage"

SEED = f"""{HEADER}
DRV-112001,Wanjiku Kamau,0712000001,TUK-001,TUK001,3000,50
DRV-112002,Brian Otieno,0712000002,TUK-002,TUK002,,
DRV-112003,Achieng Odhiambo,0712000003,TUK-003,TUK003,2500,40
"""


def csv_bytes(*lines: str, header: str = HEADER) -> bytes:
    return "\n".join([header, *lines, ""]).encode()


def run(data: bytes | str, **kwargs: Any) -> ImportResult:
    return fleet_import(data=data.encode() if isinstance(data, str) else data, **kwargs)


def fleet_snapshot() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every stored value, so 'nothing imported' also means 'nothing updated'."""
    drivers = [tuple(d.values()) for d in Driver.objects.order_by("driver_id").values()]
    vehicles = [tuple(v.values()) for v in Vehicle.objects.order_by("vehicle_id").values()]
    return drivers, vehicles


def rejected(data: bytes | str) -> list[str]:
    """Import a bad file; check that nothing changed; return the problems as printed."""
    before = fleet_snapshot()
    with pytest.raises(ImportRejected) as caught:
        run(data)
    assert fleet_snapshot() == before
    return [str(problem) for problem in caught.value.problems]


@pytest.fixture
def seeded(db: None) -> None:
    run(SEED)
    assert Driver.objects.count() == 3


GOOD_LINES = [
    "DRV-112004,Mwangi Njoroge,0712000004,TUK-004,TUK004,,",
    "DRV-112005,Faith Chebet,0712000005,TUK-005,TUK005,,",
]


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("0712", "not a Kenyan mobile number"),
        ("071200000123", "not a Kenyan mobile number"),
        ("+255712000009", "not a Kenyan mobile number"),
        ("0812000009", "not a Kenyan mobile number"),
        ("07120000x9", "not a Kenyan mobile number"),
        ("712000009", "dropped the leading 0"),
        ("2.54712E+11", "scientific notation"),
        ("07١٢٠٠٠٠٠٩", "not a Kenyan mobile number"),
    ],
)
def test_wrong_number_formats_refuse_the_whole_file(seeded: None, number: str, reason: str) -> None:
    problems = rejected(
        csv_bytes(GOOD_LINES[0], f"DRV-112009,Bad Number,{number},TUK-009,TUK009,,", GOOD_LINES[1])
    )
    assert len(problems) == 1
    assert problems[0].startswith("line 3, column mpesa_number: ")
    assert reason in problems[0]
    assert Driver.objects.count() == 3


def test_duplicate_account_in_file_ignores_case_and_spaces(db: None) -> None:
    problems = rejected(
        csv_bytes(
            "DRV-112001,Wanjiku Kamau,0712000001,TUK-001,TUK001,,",
            "DRV-112002,Brian Otieno,0712000002,TUK-002, tuk001 ,,",
        )
    )
    assert problems == [
        "line 3, column mpesa_account: 'TUK001' is already on line 2 "
        "(accounts are matched ignoring case and spaces)"
    ]
    assert Driver.objects.count() == Vehicle.objects.count() == 0


def test_account_of_another_vehicle_in_database(seeded: None) -> None:
    problems = rejected(csv_bytes(*GOOD_LINES, "DRV-112009,New Driver,0712000009,TUK-009,tuk002,,"))
    assert problems == [
        "line 4, column mpesa_account: 'TUK002' is already the account of vehicle TUK-002 "
        "in the database"
    ]
    assert Vehicle.objects.count() == 3


def test_duplicate_vehicle_and_driver_ids_in_file(db: None) -> None:
    problems = rejected(
        csv_bytes(
            "DRV-112001,Wanjiku Kamau,0712000001,TUK-001,TUK001,,",
            "DRV-112001,Brian Otieno,0712000002,tuk-001,TUK002,,",
        )
    )
    assert problems == [
        "line 3, column driver_id: 'DRV-112001' is already on line 2",
        "line 3, column vehicle_id: 'tuk-001' is already on line 2",
    ]


def test_unknown_column(db: None) -> None:
    problems = rejected(
        csv_bytes("DRV-112001,Wanjiku,0712000001,TUK-001,TUK001,,,blue", header=HEADER + ",Colour")
    )
    assert len(problems) == 1
    assert problems[0].startswith("line 1, column Colour: unknown column; the columns are: ")


@pytest.mark.parametrize("missing", ["driver_name", "mpesa_number", "vehicle_id", "mpesa_account"])
def test_missing_required_column(seeded: None, missing: str) -> None:
    names = [name for name in HEADER.split(",") if name != missing]
    rows = [dict(zip(HEADER.split(","), line.split(","), strict=True)) for line in GOOD_LINES]
    lines = [",".join(row[name] for name in names) for row in rows]
    problems = rejected(csv_bytes(*lines, header=",".join(names)))
    assert problems == [f"line 1, column {missing}: required column is missing from the header row"]


def test_header_names_are_trimmed_and_case_insensitive(db: None) -> None:
    header = " Driver_ID ,DRIVER_NAME, mpesa_number,Vehicle_Id,MPESA_ACCOUNT"
    run(csv_bytes("DRV-112001,Wanjiku,0712000001,TUK-001,TUK001", header=header))
    assert Driver.objects.get().vehicle.vehicle_id == "TUK-001"


def test_optional_columns_may_be_left_out(db: None) -> None:
    header = "driver_name,mpesa_number,vehicle_id,mpesa_account"
    run(csv_bytes("Wanjiku,0712000001,TUK-001,TUK001", header=header))
    assert Driver.objects.get().driver_id == "DRV-112001"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "line 1: the file is empty"),
        (b"\xef\xbb\xbf", "line 1: the file is empty"),
        (b" \r\n\r\n", "line 1: the file is empty"),
        (HEADER.encode() + b"\r\n", "line 2: no drivers: the file has a header row but no data"),
        (HEADER.encode() + b"\n,,,,,,\n\n", "line 2: no drivers"),
    ],
)
def test_empty_file(seeded: None, data: bytes, expected: str) -> None:
    problems = rejected(data)
    assert len(problems) == 1
    assert problems[0].startswith(expected)


def test_non_utf8_bytes_name_line_and_column(seeded: None) -> None:
    data = csv_bytes(*GOOD_LINES) + "DRV-112009,José,0712000009,TUK-009,TUK009,,\n".encode("cp1252")
    problems = rejected(data)
    assert problems == [
        "line 4, column driver_name: not UTF-8 text (byte 0xE9); save the spreadsheet as "
        "'CSV UTF-8' and import it again"
    ]


def test_non_utf8_header(db: None) -> None:
    problems = rejected(b"driver_name,mpesa_number,vehicle_id,mpesa_account,caf\xe9\n")
    assert problems[0].startswith("line 1, column #5: not UTF-8 text (byte 0xE9)")


def test_excel_byte_order_mark_is_accepted(db: None) -> None:
    run(b"\xef\xbb\xbf" + csv_bytes("DRV-112001,Wanjiku Kamau,0712000001,TUK-001,TUK001,,"))
    assert Driver.objects.get().name == "Wanjiku Kamau"


def test_utf8_names_are_kept(db: None) -> None:
    run(csv_bytes("DRV-112001,José Ñjeri,0712000001,TUK-001,TUK001,,"))
    assert Driver.objects.get().name == "José Ñjeri"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0", "'0' must be more than 0"),
        ("-100", "'-100' must be more than 0"),
        ("abc", "'abc' is not an amount in shillings"),
        ("1e3", "'1e3' is not an amount in shillings"),
        ("3000.123", "'3000.123' has more than 2 decimal places"),
        ("NaN", "'NaN' is not an amount in shillings"),
    ],
)
def test_bad_daily_target(seeded: None, value: str, reason: str) -> None:
    line = f"DRV-112009,Bad Target,0712000009,TUK-009,TUK009,{value},"
    problems = rejected(csv_bytes(GOOD_LINES[0], line, GOOD_LINES[1]))
    assert len(problems) == 1
    assert problems[0].startswith(f"line 3, column daily_target: {reason}")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("101", "'101' is not between 0 and 100"),
        ("100.01", "'100.01' is not between 0 and 100"),
        ("-1", "'-1' is not between 0 and 100"),
        ("fifty", "'fifty' is not a percentage"),
        ("50.555", "'50.555' has more than 2 decimal places"),
    ],
)
def test_bad_fare_percentage(seeded: None, value: str, reason: str) -> None:
    line = f"DRV-112009,Bad Percentage,0712000009,TUK-009,TUK009,,{value}"
    problems = rejected(csv_bytes(GOOD_LINES[0], line, GOOD_LINES[1]))
    assert len(problems) == 1
    assert problems[0].startswith(f"line 3, column fare_percentage: {reason}")


def test_good_amount_forms(db: None) -> None:
    run(csv_bytes('DRV-112001,Wanjiku,0712000001,TUK-001,TUK001,"3,500.5",52.5%'))
    driver = Driver.objects.get()
    assert driver.daily_target == Decimal("3500.50")
    assert driver.fare_percentage == Decimal("52.50")


@pytest.mark.parametrize("driver_id", ["DRV-12", "XYZ-112001", "DRV-ABCDEF", "DRV 112001"])
def test_bad_driver_id(db: None, driver_id: str) -> None:
    problems = rejected(csv_bytes(f"{driver_id},Wanjiku,0712000001,TUK-001,TUK001,,"))
    assert problems == [
        f"line 2, column driver_id: {driver_id!r} is not a driver id like DRV-112001"
    ]


def test_required_fields_must_not_be_empty(db: None) -> None:
    problems = rejected(csv_bytes("DRV-112001,  ,0712000001,,TUK001,,"))
    assert problems == [
        "line 2, column driver_name: required, but empty",
        "line 2, column vehicle_id: required, but empty",
    ]


def test_too_long_and_nul_characters(db: None) -> None:
    name, vehicle = "x" * 121, "T" * 33
    problems = rejected(csv_bytes(f"DRV-112001,{name},0712000001,{vehicle},TUK\x00001,,"))
    assert problems == [
        "line 2, column driver_name: longer than 120 characters",
        "line 2, column vehicle_id: longer than 32 characters",
        "line 2, column mpesa_account: contains a NUL character",
    ]


def test_every_problem_is_reported_in_line_order(seeded: None) -> None:
    problems = rejected(
        csv_bytes(
            "DRV-112009,Bad Number,0712,TUK-009,TUK009,,",
            *GOOD_LINES,
            "DRV-112010,Bad Both,0712000010,TUK-010,TUK001,abc,101",
        )
    )
    assert [problem.split(":")[0] for problem in problems] == [
        "line 2, column mpesa_number",
        "line 5, column mpesa_account",
        "line 5, column daily_target",
        "line 5, column fare_percentage",
    ]


def test_one_bad_line_among_five_hundred_imports_nothing(seeded: None) -> None:
    lines = [f",Driver {n},07{n:08d},TUK-{n:04d},ACC{n:04d},," for n in range(100, 600)]
    lines[321] = lines[321].replace(",07", ",08", 1)
    problems = rejected(csv_bytes(*lines))
    assert len(problems) == 1
    assert problems[0].startswith("line 323, column mpesa_number: ")
    assert Driver.objects.count() == 3
    assert Vehicle.objects.count() == 3


def test_value_in_unnamed_column(db: None) -> None:
    problems = rejected(csv_bytes("DRV-112001,Wanjiku,0712000001,TUK-001,TUK001,,,oops"))
    assert problems == ["line 2: has a value in a column without a name: 'oops'"]


def test_two_lines_without_driver_id_for_one_known_number(seeded: None) -> None:
    problems = rejected(
        csv_bytes(
            ",Wanjiku Kamau,0712000001,TUK-008,TUK008,,",
            ",Wanjiku Kamau,0712000001,TUK-009,TUK009,,",
        )
    )
    assert problems == [
        "line 3, column mpesa_number: this number is driver DRV-112001's, who is already on "
        "line 2; give the driver_id to tell the lines apart"
    ]


# ----------------------------------------------------------------------------- good path


def test_import_creates_drivers_and_vehicles_normalised(db: None) -> None:
    result = run(
        csv_bytes(
            "drv-112001, Wanjiku  Kamau ,+254 712-000-001,TUK-001, tuk001 ,3000,50",
            "DRV-112002,Brian Otieno,254112000002,TUK-002,TUK002,,",
            ",Achieng Odhiambo,0112000003,TUK-003,TUK003,2500.50,",
        )
    )
    assert result.drivers_created == ["DRV-112001", "DRV-112002", "DRV-112003"]
    assert result.vehicles_created == ["TUK-001", "TUK-002", "TUK-003"]
    rows = list(
        Driver.objects.values_list(
            "driver_id", "name", "mpesa_number", "vehicle__mpesa_account", "daily_target"
        )
    )
    assert rows == [
        ("DRV-112001", "Wanjiku Kamau", "254712000001", "TUK001", Decimal("3000.00")),
        ("DRV-112002", "Brian Otieno", "254112000002", "TUK002", None),
        ("DRV-112003", "Achieng Odhiambo", "254112000003", "TUK003", Decimal("2500.50")),
    ]


def test_reimport_with_changes_updates_without_duplicates(seeded: None) -> None:
    edited = SEED.replace("Brian Otieno,0712000002", "Brian O. Otieno,0799000002").replace(
        "TUK-003,TUK003,2500,40", "TUK-003,TUK033,2600,45"
    )
    result = run(edited)
    assert result.drivers_created == [] and result.vehicles_created == []
    assert sorted(result.drivers_updated) == ["DRV-112002", "DRV-112003"]
    assert result.vehicles_updated == ["TUK-003"]
    assert result.drivers_unchanged == 1 and result.vehicles_unchanged == 2
    assert Driver.objects.count() == 3 and Vehicle.objects.count() == 3
    brian = Driver.objects.get(driver_id="DRV-112002")
    assert (brian.name, brian.mpesa_number) == ("Brian O. Otieno", "254799000002")
    achieng = Driver.objects.select_related("vehicle").get(driver_id="DRV-112003")
    assert achieng.vehicle.mpesa_account == "TUK033"
    assert (achieng.daily_target, achieng.fare_percentage) == (Decimal("2600"), Decimal("45"))

    again = run(edited)
    assert again.drivers_updated == [] and again.vehicles_updated == []
    assert again.drivers_unchanged == 3 and again.vehicles_unchanged == 3


def test_driver_without_id_gets_the_next_one(seeded: None) -> None:
    result = run(
        csv_bytes(
            ",Mwangi Njoroge,0712000004,TUK-004,TUK004,,",
            "DRV-112010,Faith Chebet,0712000005,TUK-005,TUK005,,",
            ",Hassan Mohamed,0712000006,TUK-006,TUK006,,",
        )
    )
    assert sorted(result.drivers_created) == ["DRV-112010", "DRV-112011", "DRV-112012"]
    assert Driver.objects.get(name="Mwangi Njoroge").driver_id == "DRV-112011"


def test_first_driver_id_on_an_empty_database(db: None) -> None:
    run(csv_bytes(",Mwangi Njoroge,0712000004,TUK-004,TUK004,,"))
    assert Driver.objects.get().driver_id == "DRV-112001"


def test_reimport_without_driver_id_does_not_duplicate(db: None) -> None:
    data = csv_bytes(
        ",Mwangi Njoroge,0712000004,TUK-004,TUK004,,",
        ",Faith Chebet,0712000005,TUK-005,TUK005,,",
    )
    run(data)
    result = run(data)
    assert result.drivers_created == [] and result.drivers_unchanged == 2
    assert Driver.objects.count() == 2


def test_without_driver_id_a_new_number_on_the_same_vehicle_is_the_same_driver(
    seeded: None,
) -> None:
    run(csv_bytes(",Brian Otieno,0799000002,TUK-002,TUK002,,"))
    assert Driver.objects.count() == 3
    assert Driver.objects.get(driver_id="DRV-112002").mpesa_number == "254799000002"


def test_without_driver_id_a_known_number_on_another_vehicle_moves_the_driver(
    seeded: None,
) -> None:
    result = run(
        csv_bytes(
            ",Brian Otieno,0712000002,TUK-001,TUK001,,",
            ",New Driver,0712000009,TUK-002,TUK002,,",
        )
    )
    assert result.drivers_updated == ["DRV-112002"]
    assert result.drivers_created == ["DRV-112004"]
    assert result.drivers_unassigned == ["DRV-112001"]
    holders = dict(Vehicle.objects.values_list("vehicle_id", "driver__driver_id"))
    assert holders == {"TUK-001": "DRV-112002", "TUK-002": "DRV-112004", "TUK-003": "DRV-112003"}
    assert Driver.objects.get(driver_id="DRV-112001").vehicle is None


def test_swapping_vehicles_between_drivers(seeded: None) -> None:
    swapped = SEED.replace("TUK-001,TUK001", "TUK-X").replace("TUK-002,TUK002", "TUK-001,TUK001")
    swapped = swapped.replace("TUK-X", "TUK-002,TUK002")
    result = run(swapped)
    assert sorted(result.drivers_updated) == ["DRV-112001", "DRV-112002"]
    assert result.drivers_unassigned == []
    holders = dict(Driver.objects.values_list("driver_id", "vehicle__vehicle_id"))
    assert holders == {"DRV-112001": "TUK-002", "DRV-112002": "TUK-001", "DRV-112003": "TUK-003"}


def test_moving_a_vehicle_to_a_driver_outside_the_file_unassigns_the_old_one(
    seeded: None,
) -> None:
    result = run(csv_bytes("DRV-112002,Brian Otieno,0712000002,TUK-001,TUK001,,"))
    assert result.drivers_unassigned == ["DRV-112001"]
    holders = dict(Driver.objects.values_list("driver_id", "vehicle__vehicle_id"))
    assert holders == {"DRV-112001": None, "DRV-112002": "TUK-001", "DRV-112003": "TUK-003"}
    assert Vehicle.objects.count() == 3  # TUK-002 stays, now without a driver


def test_absent_override_columns_keep_overrides_and_empty_cells_clear_them(seeded: None) -> None:
    header = "driver_id,driver_name,mpesa_number,vehicle_id,mpesa_account"
    run(csv_bytes("DRV-112001,Wanjiku Kamau,0712000001,TUK-001,TUK001", header=header))
    wanjiku = Driver.objects.get(driver_id="DRV-112001")
    assert (wanjiku.daily_target, wanjiku.fare_percentage) == (Decimal("3000"), Decimal("50"))

    run(csv_bytes("DRV-112001,Wanjiku Kamau,0712000001,TUK-001,TUK001,,"))
    wanjiku.refresh_from_db()
    assert (wanjiku.daily_target, wanjiku.fare_percentage) == (None, None)


def test_balances_are_untouched_and_left_to_target_follows_the_target(seeded: None) -> None:
    FleetSettings.load()
    assert Driver.objects.get(driver_id="DRV-112002").left_to_target == Decimal("3000.00")
    Driver.objects.filter(driver_id="DRV-112003").update(
        current_balance=Decimal("700.00"), left_to_target=Decimal("1800.00")
    )
    run(SEED.replace("TUK-003,TUK003,2500,40", "TUK-003,TUK003,2000,40"))
    achieng = Driver.objects.get(driver_id="DRV-112003")
    assert achieng.current_balance == Decimal("700.00")
    assert achieng.left_to_target == Decimal("1300.00")


def test_semicolon_separated_file(db: None) -> None:
    header = HEADER.replace(",", ";")
    run(csv_bytes("DRV-112001;Wanjiku Kamau;0712000001;TUK-001;TUK001;3000;50", header=header))
    assert Driver.objects.get().name == "Wanjiku Kamau"


def test_dry_run_writes_nothing(seeded: None) -> None:
    before = fleet_snapshot()
    result = run(csv_bytes(*GOOD_LINES), dry_run=True)
    assert result.dry_run and result.drivers_created == ["DRV-112004", "DRV-112005"]
    assert fleet_snapshot() == before


def test_a_workbook_is_not_csv(db: None) -> None:
    problems = rejected(b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)))
    assert problems == ["this is a spreadsheet workbook, not CSV; save it as 'CSV UTF-8'"]


def test_a_number_shared_by_several_drivers_needs_the_driver_id(seeded: None) -> None:
    Driver.objects.filter(driver_id="DRV-112003").update(mpesa_number="254712000001")
    problems = rejected(csv_bytes(",Wanjiku Kamau,0712000001,TUK-009,TUK009,,"))
    assert problems == [
        "line 2, column mpesa_number: several drivers have this number "
        "(DRV-112001, DRV-112003); give the driver_id"
    ]
    # On the vehicle of one of them, the line is that driver.
    run(csv_bytes(",Achieng Odhiambo,0712000001,TUK-003,TUK003,,"))
    assert Driver.objects.count() == 3
