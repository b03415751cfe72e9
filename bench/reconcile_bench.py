"""Benchmark: reconcile_all_drivers_balances over 10,000 drivers and 1,000,000 ledger entries.

Target (issue): under 3 s on PostgreSQL, with a constant number of queries.

    .venv/bin/python bench/reconcile_bench.py [--drivers 10000] [--entries 1000000]
        [--database-url postgres://postgres@127.0.0.1:5432/tuktuk_bench_reconcile] [--keep]

The data is generated in the database with generate_series (PostgreSQL only): one completed
payment and its contribution entry per row, spread over 30 business days, today's share
matching each driver's cached balance, then 3 drivers are broken on purpose.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import psycopg

SETUP_SQL = [
    """
INSERT INTO fleet_vehicle (vehicle_id, mpesa_account, is_active, created_at)
    SELECT 'TUK-' || n, 'TUK' || n, true, now() FROM generate_series(1, %(d)s) n
    """,
    """
INSERT INTO fleet_driver (driver_id, name, mpesa_number, vehicle_id, target_sharing,
    instant_payout, current_balance, left_to_target, balance_day, consecutive_misses,
    flagged_for_review, is_active, created_at, updated_at)
    SELECT 'DRV-' || (200000 + n), 'Driver ' || n, '2547' || lpad(n::text, 8, '0'),
    v.id, 'Follow Global', 'Follow Global', 0, 3000, %(today)s, 0, false, true,
    now(), now()
    FROM generate_series(1, %(d)s) n JOIN fleet_vehicle v ON v.vehicle_id = 'TUK-' || n
    """,
    """
INSERT INTO ledger_transaction (trans_id, transaction_type, status, source, driver_id,
    account_reference, amount, driver_share, target_contribution, payer_msisdn,
    payer_name, received_at, business_day, assignment, assigned_by, note, created_at)
    SELECT 'B' || n, 'Payment', 'Completed', 'c2b', d.id, 'TUK', 100, 50, 50, '', '',
    now(), %(today)s::date - (n %% %(days)s), '', '', '', now()
    FROM generate_series(1, %(e)s) n
    JOIN fleet_driver d ON d.driver_id = 'DRV-' || (200000 + 1 + (n %% %(d)s))
    """,
    """
INSERT INTO ledger_ledgerentry (driver_id, business_day, kind, amount, transaction_id,
    note, created_at)
    SELECT driver_id, business_day, 'contribution', target_contribution, id, '', now()
    FROM ledger_transaction
    """,
    """
UPDATE fleet_driver d SET current_balance = s.total
    FROM (SELECT driver_id, sum(amount) total FROM ledger_ledgerentry
    WHERE business_day = %(today)s GROUP BY driver_id) s
    WHERE s.driver_id = d.id
    """,
    """
UPDATE fleet_driver SET current_balance = current_balance + 150
    WHERE driver_id IN ('DRV-200001', 'DRV-200002', 'DRV-200003')
    """,
    """
ANALYZE
    """,
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drivers", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/tuktuk_bench_reconcile"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    dbname = args.database_url.rsplit("/", 1)[1]
    admin_url = args.database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        admin.execute(f'CREATE DATABASE "{dbname}"')
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

    today = current_business_day(FleetSettings.load())
    started = time.perf_counter()
    with connection.cursor() as cursor:
        params = {"d": args.drivers, "e": args.entries, "days": args.days, "today": today}
        # One statement per execute: with prepared statements on (TUKTUK_DB_PREPARED, the
        # default) PostgreSQL refuses several commands in one.
        for statement in SETUP_SQL:
            cursor.execute(statement, params if "%(" in statement else None)
    print(
        f"generated {args.drivers} drivers, {args.entries} entries in "
        f"{time.perf_counter() - started:.1f}s (PostgreSQL, database {dbname})"
    )

    timings = []
    for run in range(args.runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            result = reconcile_all_drivers_balances()
            timings.append(time.perf_counter() - started)
        assert result["drivers_checked"] == args.drivers
        assert result["drivers_with_discrepancies"] == 3, result["drivers_with_discrepancies"]
        print(
            f"run {run + 1}: {timings[-1]:.2f}s, {len(queries)} queries, "
            f"{result['drivers_with_discrepancies']} discrepancies found"
        )
    timings.sort()
    print(
        f"reconcile_all_drivers_balances over {args.drivers} drivers / {args.entries} entries: "
        f"best {timings[0]:.2f}s, median {timings[len(timings) // 2]:.2f}s "
        f"(target < 3 s), {len(queries)} queries per run"
    )
    connection.close()
    if not args.keep:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
