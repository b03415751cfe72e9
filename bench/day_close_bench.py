"""Benchmark: the batch day close (`day_close_run`, what the worker runs at midnight) of one
business day for 10,000 drivers.

Target (issue 15): under 2 s on PostgreSQL.

    .venv/bin/python bench/day_close_bench.py [--drivers 10000] [--fares 10] [--keep]
        [--database-url postgres://postgres@127.0.0.1:5432/tuktuk_bench_day_close]
    .venv/bin/python bench/day_close_bench.py --tiny      # 20 drivers

The database is dropped, created and migrated; any of the three databases works
(postgres://, mysql://, sqlite:///path), PostgreSQL is the one the target is for. The fleet is
generated with the ORM's bulk_create (so a column added with a default needs nothing here), on
business day 2026-03-10 with the fleet's default settings (target 3000, 50 %, sharing on, no
bonus): per driver a vehicle and its open assignment, the day's opening entry (a debt carried
from the day before for one driver in five), `--fares` completed payments with their
contribution entries and the cached balance they add up to; odd drivers have a slow day (they
miss the target), even ones a good day. One driver in ten has a deposit that may pay a missed
target (a missed day proposes a deduction), one in 25 already has two misses in a row (a third
flags them for review), one in 50 is off that day (paused: no fares, no miss).

The clock is pinned with time-machine: generation at 10:00 Africa/Nairobi on 2026-03-10, the
close at 10:00 the next day, where the worker would find `days_due(fleet) == [2026-03-10]` and
call `day_close_run()`; that call is timed (its SQL counted and timed through Django's
execute_wrapper), then checked: every driver closed once, rolled to the next day, its cached
balance equal to the new day's ledger, each close equal to its day's ledger sum. The last line
is the result; the exit status is 1 when a check failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import time_machine

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tuktuk_bench_day_close"
TARGET_SECONDS = 2.0  # issue 15, for 10,000 drivers on PostgreSQL
NAIROBI = ZoneInfo("Africa/Nairobi")
DAY = dt.date(2026, 3, 10)
GENERATED_AT = dt.datetime(2026, 3, 10, 10, 0, tzinfo=NAIROBI)
CLOSED_AT = dt.datetime(2026, 3, 11, 10, 0, tzinfo=NAIROBI)
BATCH = 5000


def database_recreate(url: str) -> None:
    """Drop the URL's database if it exists and create it empty."""
    import dj_database_url

    cfg = dj_database_url.parse(url)
    name = cfg["NAME"]
    if url.startswith("sqlite"):
        Path(name).unlink(missing_ok=True)
    elif url.startswith("postgres"):
        import psycopg

        with psycopg.connect(admin_dsn(url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    else:
        with mysql_admin(cfg) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
            admin.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )


def database_drop(url: str) -> None:
    import dj_database_url

    cfg = dj_database_url.parse(url)
    name = cfg["NAME"]
    if url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)
    elif url.startswith("postgres"):
        import psycopg

        with psycopg.connect(admin_dsn(url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        with mysql_admin(cfg) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS `{name}`")


def admin_dsn(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


@contextmanager
def mysql_admin(cfg: Mapping[str, Any]) -> Iterator[Any]:
    import pymysql

    connection = pymysql.connect(
        host=cfg["HOST"] or "127.0.0.1",
        port=int(cfg["PORT"] or 3306),
        user=cfg["USER"],
        password=cfg["PASSWORD"] or "",
        autocommit=True,
    )
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


class SqlMeter:
    """Django execute_wrapper: counts the statements and the time spent inside them."""

    def __init__(self) -> None:
        self.queries = 0
        self.seconds = 0.0
        self.by_kind: Counter[str] = Counter()  # seconds per statement, by its first words

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent = time.perf_counter() - started
            self.seconds += spent
            self.queries += 1
            self.by_kind[" ".join(sql.split()[:6])[:90]] += spent

    def report(self) -> str:
        """Where the time inside the statements went: the slowest kinds first."""
        return "\n".join(
            f"  {seconds:6.3f} s  {kind}" for kind, seconds in self.by_kind.most_common(12)
        )


def backend_cpu_seconds() -> float | None:
    """CPU used so far by this connection's PostgreSQL backend (on this machine), or None."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # another machine, or not ours to read
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fleet_generate(*, drivers: int, fares: int, seed: int) -> dict[str, int]:
    """The fleet of the module docstring on business day DAY; returns what it made."""
    from django.db import connection

    from tuktuk.core.money import whole_shillings_down
    from tuktuk.fleet.models import Assignment, DayOff, Driver, FleetSettings, Vehicle
    from tuktuk.ledger.models import (
        DepositAccount,
        DepositEntry,
        DepositEntryKind,
        EntryKind,
        LedgerEntry,
        Transaction,
        TransactionSource,
        TransactionStatus,
        TransactionType,
    )

    fleet = FleetSettings.load()
    target = fleet.global_daily_target
    percentage = fleet.global_fare_percentage
    rng = random.Random(seed)
    opened = dt.datetime.combine(DAY, dt.time(6, 0), tzinfo=NAIROBI)

    Vehicle.objects.bulk_create(
        [Vehicle(vehicle_id=f"TUK-{n}", mpesa_account=f"TUK{n}") for n in range(1, drivers + 1)],
        batch_size=BATCH,
    )
    vehicles = dict(Vehicle.objects.values_list("vehicle_id", "pk"))
    plans = []
    for n in range(1, drivers + 1):
        off = n % 50 == 7
        opening = Decimal(0 if off else rng.choice([0, 0, 0, 0, 500, 1500]))
        # Odd drivers have a slow day (they miss the target), even ones a good day.
        low, high = (100, 500) if n % 2 else (400, 1400)
        amounts = [] if off else [Decimal(rng.randrange(low, high, 10)) for _ in range(fares)]
        shares = [whole_shillings_down(a * percentage / 100) for a in amounts]
        balance = -opening + sum((a - s for a, s in zip(amounts, shares, strict=True)), Decimal(0))
        plans.append((n, off, -opening, amounts, shares, balance))
    Driver.objects.bulk_create(
        [
            Driver(
                driver_id=f"DRV-{200000 + n}",
                name=f"Driver {n}",
                mpesa_number=f"2547{n:08d}",
                vehicle_id=vehicles[f"TUK-{n}"],
                current_balance=balance,
                left_to_target=max(Decimal(0), target - balance),
                balance_day=DAY,
                consecutive_misses=2 if n % 25 == 5 else 0,
            )
            for n, _off, _opening, _amounts, _shares, balance in plans
        ],
        batch_size=BATCH,
    )
    driver_pks = dict(Driver.objects.values_list("driver_id", "pk"))

    def pk_of(n: int) -> int:
        return driver_pks[f"DRV-{200000 + n}"]

    Assignment.objects.bulk_create(
        [Assignment(vehicle_id=vehicles[f"TUK-{n}"], driver_id=pk_of(n)) for n, *_ in plans],
        batch_size=BATCH,
    )
    DayOff.objects.bulk_create(
        [DayOff(driver_id=pk_of(n), day=DAY, created_by="bench") for n, off, *_ in plans if off],
        batch_size=BATCH,
    )
    deposit_drivers = [pk_of(n) for n, *_ in plans if n % 10 == 3]
    DepositAccount.objects.bulk_create(
        [
            DepositAccount(
                driver_id=pk,
                required=True,
                initial_amount=Decimal(5000),
                allow_target_deduction=True,
            )
            for pk in deposit_drivers
        ],
        batch_size=BATCH,
    )
    DepositEntry.objects.bulk_create(
        [
            DepositEntry(
                driver_id=pk,
                seq=1,
                kind=DepositEntryKind.INITIAL,
                amount=Decimal(5000),
                balance_after=Decimal(5000),
                reference="bench",
            )
            for pk in deposit_drivers
        ],
        batch_size=BATCH,
    )
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                driver_id=pk_of(n),
                business_day=DAY,
                kind=EntryKind.OPENING,
                amount=opening,
                note=f"carried over from {DAY - dt.timedelta(days=1)}",
            )
            for n, _off, opening, *_ in plans
        ],
        batch_size=BATCH,
    )
    payments = []
    for n, _off, _opening, amounts, shares, _balance in plans:
        for k, (amount, share) in enumerate(zip(amounts, shares, strict=True)):
            moment = opened + dt.timedelta(minutes=60 * k + rng.randrange(60))
            payments.append(
                Transaction(
                    trans_id=f"DC{n:06d}X{k:04d}",
                    transaction_type=TransactionType.PAYMENT,
                    status=TransactionStatus.COMPLETED,
                    source=TransactionSource.C2B,
                    driver_id=pk_of(n),
                    vehicle_id=vehicles[f"TUK-{n}"],
                    account_reference=f"TUK{n}",
                    amount=amount,
                    driver_share=share,
                    target_contribution=amount - share,
                    payer_msisdn=f"2547{rng.randrange(10**8):08d}",
                    mpesa_time=moment,
                    received_at=moment,
                    business_day=DAY,
                )
            )
    Transaction.objects.bulk_create(payments, batch_size=BATCH)
    if any(p.pk is None for p in payments):  # a database that returns no ids from bulk inserts
        ids = dict(Transaction.objects.values_list("trans_id", "pk"))
        for payment in payments:
            payment.pk = ids[payment.trans_id]
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                driver_id=driver_pk,
                business_day=DAY,
                kind=EntryKind.CONTRIBUTION,
                amount=p.target_contribution,
                transaction_id=p.pk,
            )
            for p in payments
            if (driver_pk := p.driver_id) is not None
        ],
        batch_size=BATCH,
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {
        "drivers": drivers,
        "payments": len(payments),
        "entries": len(payments) + drivers,
        "off": sum(1 for _n, off, *_ in plans if off),
        "deposits": len(deposit_drivers),
    }


def close_check(*, drivers: int) -> tuple[list[str], Counter[str]]:
    """What went wrong (empty: nothing) and the closes' outcomes."""
    from django.db.models import Sum

    from tuktuk.fleet.models import Driver
    from tuktuk.ledger.models import DayClose, DeductionProposal, LedgerEntry

    problems: list[str] = []
    closes = list(
        DayClose.objects.filter(business_day=DAY).values(
            "driver_id", "closing_balance", "target_met", "paused", "flagged_for_review"
        )
    )
    if len(closes) != drivers:
        problems.append(f"{len(closes)} closes of {DAY} for {drivers} drivers")
    sums = {
        day: dict(
            LedgerEntry.objects.filter(business_day=day)
            .values("driver_id")
            .annotate(total=Sum("amount"))
            .order_by()
            .values_list("driver_id", "total")
        )
        for day in (DAY, DAY + dt.timedelta(days=1))
    }
    wrong_close = [
        c["driver_id"] for c in closes if sums[DAY][c["driver_id"]] != c["closing_balance"]
    ]
    if wrong_close:
        problems.append(f"{len(wrong_close)} close(s) differ from the day's ledger sum")
    rows = list(Driver.objects.values_list("pk", "balance_day", "current_balance"))
    not_rolled = [pk for pk, day, _ in rows if day != DAY + dt.timedelta(days=1)]
    if not_rolled:
        problems.append(f"{len(not_rolled)} driver(s) not rolled to {DAY + dt.timedelta(days=1)}")
    tomorrow = sums[DAY + dt.timedelta(days=1)]
    unexplained = [pk for pk, _, balance in rows if tomorrow.get(pk) != balance]
    if unexplained:
        problems.append(f"{len(unexplained)} cached balance(s) differ from the new day's ledger")
    outcome: Counter[str] = Counter(dict.fromkeys(["met", "missed", "paused", "flagged"], 0))
    for close in closes:
        outcome["paused" if close["paused"] else "met" if close["target_met"] else "missed"] += 1
        outcome["flagged"] += close["flagged_for_review"]
    outcome["deductions proposed"] = DeductionProposal.objects.filter(business_day=DAY).count()
    return problems, outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--drivers", type=int, default=10_000)
    parser.add_argument("--fares", type=int, default=10, help="payments per driver on the day")
    parser.add_argument(
        "--tiny", action="store_true", help="20 drivers, 10 fares each: checks the bench works"
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_URL,
        help="postgres://, mysql:// or sqlite:///path; dropped and created again",
    )
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    if args.tiny:
        args.drivers = 20
    if not args.database_url.startswith(("postgres://", "postgresql://", "mysql://", "sqlite:")):
        parser.error("--database-url: a postgres://, mysql:// or sqlite:/// URL")

    work = Path(tempfile.mkdtemp(prefix="tuktuk-bench-day-close-"))
    os.environ["TUKTUK_DATABASE_URL"] = args.database_url
    os.environ.setdefault("TUKTUK_DATA_DIR", str(work))
    os.environ["TUKTUK_LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tuktuk.settings"
    database_recreate(args.database_url)
    try:
        return run(args)
    finally:
        if not args.keep:
            database_drop(args.database_url)
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from tuktuk.fleet.models import FleetSettings
    from tuktuk.ledger.day_close import day_close_run, days_due

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    migrated = time.perf_counter() - started
    with time_machine.travel(GENERATED_AT, tick=True):
        started = time.perf_counter()
        made = fleet_generate(drivers=args.drivers, fares=args.fares, seed=args.seed)
        print(
            f"{connection.vendor}: migrated in {migrated:.1f} s; generated {made['drivers']} "
            f"drivers, {made['payments']} payments, {made['entries']} ledger entries on {DAY} "
            f"({made['off']} off, {made['deposits']} with a deposit) in "
            f"{time.perf_counter() - started:.1f} s"
        )
    with time_machine.travel(CLOSED_AT, tick=True):
        due = days_due(FleetSettings.load())
        if due != [DAY]:
            print(f"FAILED: days due {due}, expected [{DAY}]", file=sys.stderr)
            return 1
        meter = SqlMeter()
        backend_started = backend_cpu_seconds()
        with connection.execute_wrapper(meter):
            started, cpu_started = time.perf_counter(), time.process_time()
            closed = day_close_run()
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
        backend_ended = backend_cpu_seconds()
        problems, outcome = close_check(drivers=args.drivers)
    connection.close()
    if closed != args.drivers:
        problems.append(f"day_close_run reported {closed} closes")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    full_size = args.drivers >= 10_000 and connection.vendor == "postgresql"
    verdict = (
        ("met" if elapsed < TARGET_SECONDS else "MISSED")
        if full_size
        else "applies at 10000 drivers on PostgreSQL"
    )
    backend = (
        f" + {backend_ended - backend_started:.2f} s in its PostgreSQL backend"
        if backend_started is not None and backend_ended is not None
        else ""
    )
    print("time inside statements, by kind:\n" + meter.report())
    print("outcome: " + ", ".join(f"{count} {what}" for what, count in outcome.items()))
    print(
        f"day_close_run of {DAY} for {args.drivers} drivers ({connection.vendor}): "
        f"{elapsed:.2f} s, {elapsed / max(args.drivers, 1) * 1000:.2f} ms per driver, "
        f"{meter.queries} queries ({meter.queries / max(args.drivers, 1):.1f} per driver, "
        f"{meter.seconds:.2f} s inside them), CPU {cpu:.2f} s in this process{backend} "
        f"(target < {TARGET_SECONDS:.0f} s: {verdict})"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
