"""Benchmark: reconcile_all_drivers_balances over 10,000 drivers and 1,000,000 ledger entries.

Target (issue 15): under 0.5 s on PostgreSQL, with a constant number of queries.

    .venv/bin/python bench/reconcile_bench.py [--drivers 10000] [--entries 1000000]
        [--days 30] [--runs 5] [--keep]
        [--database-url postgres://postgres@127.0.0.1:5432/tuktuk_bench_reconcile]
    .venv/bin/python bench/reconcile_bench.py --tiny     # 20 drivers, 400 entries, 1 run

The database (PostgreSQL only) is dropped, created and migrated (`tuktuk migrate`), then the
data is generated in it with generate_series, one statement per execute (with prepared
statements on, TUKTUK_DB_PREPARED, the default, PostgreSQL refuses several commands in one):
a vehicle and a driver per driver, one completed payment and its contribution entry per
entry, spread over `--days` business days, today's share matching each driver's cached
balance, then 3 drivers are broken on purpose. Every INSERT names every NOT NULL column, and
the bench checks that against the migrated schema first: a column added since stops it with
the table and column to add here, not with a constraint error halfway through.

The clock is pinned (time-machine) at 10:00 Africa/Nairobi on a fixed day, so the run never
depends on the time of day. The last line is the result; the exit status is 1 when the
reconciliation did not find exactly the 3 broken drivers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import psycopg
import time_machine

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tuktuk_bench_reconcile"
TARGET_SECONDS = 0.5  # issue 15, at 10,000 drivers / 1,000,000 entries
# A fixed instant, 10:00 in Nairobi: business day 2026-03-10 whatever the real clock says.
NOW = dt.datetime(2026, 3, 10, 10, 0, tzinfo=ZoneInfo("Africa/Nairobi"))
BROKEN = ("DRV-200001", "DRV-200002", "DRV-200003")


@dataclass(frozen=True)
class Insert:
    """INSERT INTO table (columns) SELECT expressions source: each column next to its value."""

    table: str
    values: dict[str, str]
    source: str

    def sql(self) -> str:
        columns = ", ".join(self.values)
        expressions = ",\n    ".join(f"{value} AS {name}" for name, value in self.values.items())
        return f"INSERT INTO {self.table} ({columns})\nSELECT {expressions}\n{self.source}"


# The day of entry n: `today` minus 0..days-1. Its payment was received at 10:00 that day.
DAY = "(%(today)s::date - (n %% %(days)s))"
RECEIVED = f"(({DAY} + time '10:00') AT TIME ZONE 'Africa/Nairobi')"

INSERTS = [
    Insert(
        "fleet_vehicle",
        {
            "vehicle_id": "'TUK-' || n",
            "mpesa_account": "'TUK' || n",
            "is_active": "true",
            "status": "'Available'",
            "created_at": "%(now)s",
        },
        "FROM generate_series(1, %(d)s) n",
    ),
    Insert(
        "fleet_driver",
        {
            "driver_id": "'DRV-' || (200000 + n)",
            "name": "'Driver ' || n",
            "mpesa_number": "'2547' || lpad(n::text, 8, '0')",
            "vehicle_id": "v.id",
            "target_sharing": "'Follow Global'",
            "instant_payout": "'Follow Global'",
            "current_balance": "0",
            "left_to_target": "3000",
            "balance_day": "%(today)s",
            "consecutive_misses": "0",
            "flagged_for_review": "false",
            "is_active": "true",
            "is_substitute": "false",
            "sms_opt_out": "false",
            "created_at": "%(now)s",
            "updated_at": "%(now)s",
        },
        "FROM generate_series(1, %(d)s) n JOIN fleet_vehicle v ON v.vehicle_id = 'TUK-' || n",
    ),
    Insert(
        "ledger_transaction",
        {
            "trans_id": "'B' || n",
            "transaction_type": "'Payment'",
            "status": "'Completed'",
            "source": "'c2b'",
            "driver_id": "d.id",
            "vehicle_id": "d.vehicle_id",
            "account_reference": "'TUK' || (1 + (n %% %(d)s))",
            "amount": "100",
            "driver_share": "50",
            "target_contribution": "50",
            "payer_msisdn": "'254700000000'",
            "payer_name": "''",
            "mpesa_time": RECEIVED,
            "received_at": RECEIVED,
            "business_day": DAY,
            "assignment": "''",
            "assigned_by": "''",
            "note": "''",
            "redeliveries": "0",
            "created_at": RECEIVED,
        },
        "FROM generate_series(1, %(e)s) n\n"
        "JOIN fleet_driver d ON d.driver_id = 'DRV-' || (200000 + 1 + (n %% %(d)s))",
    ),
    Insert(
        "ledger_ledgerentry",
        {
            "driver_id": "driver_id",
            "business_day": "business_day",
            "kind": "'contribution'",
            "amount": "target_contribution",
            "transaction_id": "id",
            "note": "''",
            "created_at": "received_at",
        },
        "FROM ledger_transaction",
    ),
]

AFTER = [
    """
UPDATE fleet_driver d SET current_balance = s.total, left_to_target = greatest(0, 3000 - s.total)
    FROM (SELECT driver_id, sum(amount) total FROM ledger_ledgerentry
    WHERE business_day = %(today)s GROUP BY driver_id) s
    WHERE s.driver_id = d.id
    """,
    f"""
UPDATE fleet_driver SET current_balance = current_balance + 150
    WHERE driver_id IN ({", ".join(f"'{driver}'" for driver in BROKEN)})
    """,
    "ANALYZE",
]


def unnamed_columns(cursor: psycopg.Cursor, inserts: list[Insert]) -> list[str]:
    """'table.column' for every NOT NULL column (but the id) an INSERT leaves out."""
    missing = []
    for insert in inserts:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = %s AND is_nullable = 'NO' "
            "AND is_identity = 'NO' ORDER BY ordinal_position",
            [insert.table],
        )
        required = [name for (name,) in cursor.fetchall() if name != "id"]
        if not required:
            missing.append(f"{insert.table} (no such table)")
        missing += [f"{insert.table}.{c}" for c in required if c not in insert.values]
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--drivers", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30, help="business days the entries span")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="20 drivers, 400 entries, 3 days, 1 run: checks the bench still works",
    )
    parser.add_argument(
        "--database-url", default=DEFAULT_URL, help="PostgreSQL; dropped and created again"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    if args.tiny:
        args.drivers, args.entries, args.days, args.runs = 20, 400, 3, 1
    if args.drivers < len(BROKEN) or args.entries < args.drivers:
        parser.error(f"at least {len(BROKEN)} drivers and as many entries as drivers")
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("PostgreSQL only (generate_series)")

    base, dbname = args.database_url.rsplit("/", 1)
    admin_url = base + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        admin.execute(f'CREATE DATABASE "{dbname}"')
    try:
        return run(args, dbname)
    finally:
        if not args.keep:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def run(args: argparse.Namespace, dbname: str) -> int:
    os.environ["TUKTUK_DATABASE_URL"] = args.database_url
    os.environ.setdefault("TUKTUK_DATA_DIR", tempfile.mkdtemp(prefix="tuktuk-bench-"))
    os.environ["TUKTUK_LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tuktuk.settings"
    subprocess.run(
        [sys.executable, "-m", "tuktuk", "migrate", "-v0"], check=True, env=dict(os.environ)
    )

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tuktuk.backoffice.legacy import reconcile_all_drivers_balances
    from tuktuk.fleet.models import FleetSettings
    from tuktuk.ledger.day_close import current_business_day

    with time_machine.travel(NOW, tick=True):
        today = current_business_day(FleetSettings.load())
        started = time.perf_counter()
        params = {
            "d": args.drivers,
            "e": args.entries,
            "days": args.days,
            "today": today,
            "now": NOW,
        }
        with connection.cursor() as cursor:
            missing = unnamed_columns(cursor.cursor, INSERTS)
            if missing:
                print(
                    "bench/reconcile_bench.py: the schema has NOT NULL column(s) its INSERTs do "
                    f"not name; add them to INSERTS: {', '.join(missing)}",
                    file=sys.stderr,
                )
                return 2
            # One statement per execute: with prepared statements on, PostgreSQL refuses
            # several commands in one.
            for statement in [insert.sql() for insert in INSERTS] + AFTER:
                cursor.execute(statement, params if "%(" in statement else None)
        print(
            f"generated {args.drivers} drivers, {args.entries} entries over {args.days} days "
            f"in {time.perf_counter() - started:.1f} s (PostgreSQL, database {dbname}, "
            f"business day {today})"
        )

        timings = []
        count = 0
        for number in range(1, args.runs + 1):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                result = reconcile_all_drivers_balances()
                timings.append(time.perf_counter() - started)
            count = len(queries)
            in_sql = sum(float(query["time"]) for query in queries.captured_queries)
            found = result["drivers_with_discrepancies"]
            print(
                f"run {number}: {timings[-1]:.2f} s, {count} queries taking {in_sql:.2f} s, "
                f"{found} discrepancies"
            )
            if result["drivers_checked"] != args.drivers or found != len(BROKEN):
                print(
                    f"FAILED: expected {args.drivers} drivers checked and {len(BROKEN)} "
                    f"with discrepancies, got {result['drivers_checked']} and {found}",
                    file=sys.stderr,
                )
                return 1
        slowest = max(queries.captured_queries, key=lambda query: float(query["time"]))
        print(
            f"slowest query of the last run, {float(slowest['time']):.2f} s: {slowest['sql'][:300]}"
        )
    connection.close()
    timings.sort()
    best, median = timings[0], timings[len(timings) // 2]
    full_size = args.drivers >= 10_000 and args.entries >= 1_000_000
    verdict = (
        ("met" if median < TARGET_SECONDS else "MISSED")
        if full_size
        else "applies at 10000 drivers / 1000000 entries"
    )
    print(
        f"reconcile_all_drivers_balances over {args.drivers} drivers / {args.entries} entries: "
        f"best {best:.2f} s, median {median:.2f} s, {count} queries per run "
        f"(target < {TARGET_SECONDS} s: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
