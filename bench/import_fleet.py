"""Time `tuktuk import-fleet` on a generated fleet (500 drivers by default), on a fresh database.

Usage: .venv/bin/python bench/import_fleet.py [--drivers 500] [--database-url URL]
       .venv/bin/python bench/import_fleet.py --tiny     # 20 drivers: checks the bench works

Without --database-url a new SQLite file in a temporary directory is used (the embedded
default) and removed afterwards; a given database must be empty. Prints the seconds for the
first import, an unchanged re-import and an edited one (targets changed, vehicles swapped
between drivers).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

FIRST_NAMES = ["Wanjiku", "Brian", "Achieng", "Mwangi", "Faith", "Hassan", "Kevin", "Njeri"]
LAST_NAMES = ["Kamau", "Otieno", "Odhiambo", "Njoroge", "Chebet", "Mohamed", "Kiprop", "Wafula"]
HEADER = [
    "driver_id",
    "driver_name",
    "mpesa_number",
    "vehicle_id",
    "mpesa_account",
    "daily_target",
    "fare_percentage",
]


def fleet_rows(count: int, rng: random.Random) -> list[dict[str, str]]:
    rows = []
    for n in range(1, count + 1):
        rows.append(
            {
                # Every other driver without an id, so both ways of matching are exercised.
                "driver_id": f"DRV-{112000 + n:06d}" if n % 2 else "",
                "driver_name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                "mpesa_number": rng.choice(["07", "+2547", "2541", "01"]) + f"{n:08d}",
                "vehicle_id": f"TUK-{n:04d}",
                "mpesa_account": f"tuk{n:04d}",
                "daily_target": rng.choice(["", "3000", "2500.50"]),
                "fare_percentage": rng.choice(["", "50", "45.5"]),
            }
        )
    return rows


def edited(rows: list[dict[str, str]], rng: random.Random) -> list[dict[str, str]]:
    rows = [dict(row) for row in rows]
    for row in rng.sample(rows, len(rows) // 10):
        row["daily_target"] = "2800"
    with_ids = [row for row in rows if row["driver_id"]]
    for first, second in zip(with_ids[0:40:2], with_ids[1:40:2], strict=True):
        for key in ("vehicle_id", "mpesa_account"):
            first[key], second[key] = second[key], first[key]
    return rows


def to_csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drivers", type=int, default=500)
    parser.add_argument("--tiny", action="store_true", help="20 drivers: checks the bench works")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    if args.tiny:
        args.drivers = 20

    work = Path(tempfile.mkdtemp(prefix="tuktuk-bench-import-"))
    # Before Django reads its settings: a data dir and database of our own.
    os.environ["TUKTUK_DATA_DIR"] = str(work)
    os.environ["TUKTUK_DATABASE_URL"] = args.database_url or f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ.setdefault("TUKTUK_LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tuktuk.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from tuktuk.fleet.importer import fleet_import
    from tuktuk.fleet.models import Driver, Vehicle

    call_command("migrate", interactive=False, verbosity=0)
    rng = random.Random(112001)
    rows = fleet_rows(args.drivers, rng)
    path = work / "fleet.csv"
    path.write_bytes(to_csv(rows))
    edited_path = work / "fleet-edited.csv"
    edited_path.write_bytes(to_csv(edited(rows, rng)))
    print(f"{connection.vendor}, {args.drivers} drivers")

    for label, source in [
        ("first import", path),
        ("re-import, unchanged", path),
        ("re-import, edited", edited_path),
    ]:
        started = time.perf_counter()
        result = fleet_import(data=source.read_bytes())
        elapsed = time.perf_counter() - started
        print(f"{label:24s} {elapsed:7.3f} s   " + " ".join(result.summary_lines()))
    assert Driver.objects.count() == args.drivers
    assert Vehicle.objects.count() == args.drivers
    connection.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
