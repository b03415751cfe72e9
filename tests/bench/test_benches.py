"""Every bench still runs: each script in bench/ at its tiny size, as a subprocess, must exit 0
and print its result line, so a schema or API change that breaks a bench fails here and not
the next time someone wants figures (issue 15, "benchmarks that never rot").

The benches run against the server of this session's test database (the host, port and user
pytest-django uses, as tools/run_tests.py set them), each in a database of its own named after
this process (`tuktuk_bench_<what>_<pid>`), so the parallel runs of `make test` never collide;
each is dropped afterwards. The PostgreSQL-only benches (reconcile, C2B load, failover) run in
the postgresql suite only; the day close, the acknowledgement's CPU and the fleet import run in
every suite, on that suite's database; the fault campaign's runner in the SQLite suite (see its
test).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from tests.support import pg_auto_failover
from tests.support.live_server import REPO_ROOT, child_env

BENCH = REPO_ROOT / "bench"
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
SCHEMES = {"postgresql": "postgres", "mysql": "mysql"}


def server_url(database: str) -> str:
    """`database` on the server of this session's test database."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    port = s["PORT"] or DEFAULT_PORTS[connection.vendor]
    return f"{SCHEMES[connection.vendor]}://{auth}@{s['HOST'] or '127.0.0.1'}:{port}/{database}"


def server_execute(statement: str) -> None:
    """One statement on the server, outside any database of ours (create, drop)."""
    s = connection.settings_dict
    host, port = s["HOST"] or "127.0.0.1", int(s["PORT"] or DEFAULT_PORTS[connection.vendor])
    if connection.vendor == "postgresql":
        import psycopg

        with psycopg.connect(
            host=host,
            port=port,
            user=s["USER"],
            password=s["PASSWORD"] or None,
            dbname="postgres",
            autocommit=True,
        ) as admin:
            admin.execute(statement)
    else:
        import pymysql

        admin = pymysql.connect(host=host, port=port, user=s["USER"], password=s["PASSWORD"] or "")
        try:
            with admin.cursor() as cursor:
                cursor.execute(statement)
        finally:
            admin.close()


def suite_database_url(database: str, tmp_path: Path) -> str:
    """For a bench that creates its own database: a new SQLite file in the SQLite suite, else
    `database` on this suite's server."""
    if connection.vendor == "sqlite":
        return f"sqlite:///{tmp_path / 'bench.sqlite3'}"
    return server_url(database)


def quoted(name: str) -> str:
    return f'"{name}"' if connection.vendor == "postgresql" else f"`{name}`"


@pytest.fixture
def bench_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database name of this test's own on the test server (not created), dropped after."""
    what = request.node.name.removeprefix("test_").split("_bench")[0]
    name = f"tuktuk_bench_{what}_{os.getpid()}"
    yield name
    if connection.vendor != "sqlite":
        force = " WITH (FORCE)" if connection.vendor == "postgresql" else ""
        server_execute(f"DROP DATABASE IF EXISTS {quoted(name)}{force}")


def postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: runs with the postgresql suite")


def bench_run(
    *args: str | Path, tmp_path: Path, timeout: float = 240, env: dict[str, str] | None = None
) -> str:
    """Run a bench script; its standard output once it exited 0 (else fail, showing both)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    environment = env or child_env(database=False)
    environment.update(TUKTUK_DATA_DIR=str(data_dir), TUKTUK_LOG_LEVEL="WARNING")
    done = subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{args[0]} exited {done.returncode}:\n{output[-6000:]}"
    return done.stdout


def assert_printed(output: str, *patterns: str) -> None:
    for pattern in patterns:
        assert re.search(pattern, output, re.MULTILINE), (
            f"no line matching {pattern!r} in:\n{output[-6000:]}"
        )


def test_reconcile_bench(bench_database: str, tmp_path: Path) -> None:
    postgresql_only()
    output = bench_run(
        BENCH / "reconcile_bench.py",
        "--tiny",
        "--database-url",
        server_url(bench_database),
        tmp_path=tmp_path,
    )
    assert_printed(
        output,
        r"run 1: [\d.]+ s, \d+ queries taking [\d.]+ s, 3 discrepancies",
        r"reconcile_all_drivers_balances over 20 drivers / 400 entries: best [\d.]+ s, "
        r"median [\d.]+ s, \d+ queries per run \(target < 0.5 s",
    )


def test_day_close_bench(bench_database: str, tmp_path: Path) -> None:
    output = bench_run(
        BENCH / "day_close_bench.py",
        "--tiny",
        "--database-url",
        suite_database_url(bench_database, tmp_path),
        tmp_path=tmp_path,
    )
    assert_printed(
        output,
        r"outcome: \d+ met, \d+ missed, 1 paused, \d+ flagged, \d+ deductions proposed",
        rf"day_close_run of 2026-03-10 for 20 drivers \({connection.vendor}\): [\d.]+ s, "
        r"[\d.]+ ms per driver, \d+ queries .*\(target < 2 s",
    )


def test_ack_cpu_bench(bench_database: str, tmp_path: Path) -> None:
    output = bench_run(
        BENCH / "ack_cpu_bench.py",
        "--tiny",
        "--database-url",
        suite_database_url(bench_database, tmp_path),
        tmp_path=tmp_path,
    )
    assert_printed(
        output,
        r"^checks: 250 answered, 0 not 200/ResultCode 0, 250 stored received, 250 distinct: ok$",
        rf"^store and acknowledge in the web process \({connection.vendor}\): "
        r"median [\d.]+ ms CPU, [\d.]+ ms wall per confirmation \(1 x 50\)$",
    )


def test_import_fleet_bench(bench_database: str, tmp_path: Path) -> None:
    url = []
    if connection.vendor != "sqlite":  # the bench's own default: a new SQLite file
        extra = (
            " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            if connection.vendor == "mysql"
            else ""
        )
        server_execute(f"CREATE DATABASE {quoted(bench_database)}{extra}")
        url = ["--database-url", server_url(bench_database)]
    output = bench_run(BENCH / "import_fleet.py", "--tiny", *url, tmp_path=tmp_path)
    assert_printed(
        output,
        rf"^{connection.vendor}, 20 drivers$",
        r"first import +[\d.]+ s",
        r"re-import, unchanged +[\d.]+ s",
        r"re-import, edited +[\d.]+ s",
    )


@pytest.mark.faults
def test_fault_campaign_bench(tmp_path: Path) -> None:
    """bench/faults/run.py runs tests/faults through tools/run_tests.py, a pytest session of its
    own. Its scenarios already run on every database in tests/faults; what this checks is the
    campaign's own plumbing (arguments, run_tests, the counts' report, the table), the same on
    every database: so in the SQLite suite only, the quickest. Not `child_env`: under
    --clock-at that session shifts its own clock (TUKTUK_TEST_CLOCK_AT is inherited) and must
    not start on libfaketime's."""
    if connection.vendor != "sqlite":
        pytest.skip("runs in the SQLite suite (tests/faults runs the scenarios on every database)")
    env = dict(os.environ)
    env.pop("TUKTUK_TEST_DATABASE_NAME", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    output = bench_run(
        BENCH / "faults" / "run.py", "--tiny", "--backends", "sqlite", tmp_path=tmp_path, env=env
    )
    assert_printed(
        output,
        r"===== fault campaign, scale small, \d+ s =====",
        r"fuzz-c2b +sqlite +\d+ +\d+ +\d+ +0 +0 +0 ",
        r"exactly-once: ok",
    )


def test_c2b_load_bench(bench_database: str, tmp_path: Path) -> None:
    """bench/c2b_load.py belongs to its own work (its options and table grow): the tiny run
    uses the options its --help offers, and the checks are its rows' first columns (scenario,
    concurrency), exactly-once `ok` (its exit status covers errors) and the SQL line."""
    postgresql_only()
    if shutil.which("pgbench") is None:
        why = "pgbench is not on the PATH (Debian: apt-get install postgresql-15)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the C2B bench is required under CI=true: {why}")
        pytest.skip(why)
    script = BENCH / "c2b_load.py"
    offered = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=REPO_ROOT,
        env=child_env(database=False),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    args: list[str | Path] = [
        script,
        "--pg-url",
        server_url("postgres").rsplit("/", 1)[0],
        "--db",
        bench_database,
        "--pgbench-db",
        bench_database + "_pgbench",
        "--duration",
        "1",
        "--concurrency",
        "1,2",
        "--drivers",
        "3",
        "--warmup",
        "0",
        "--pgbench-scale",
        "1",
        "--settle",
        "0",
    ]
    if "--engines" in offered:  # one posting engine: the runs are per engine count
        args += ["--engines", "1"]
    try:
        output = bench_run(*args, tmp_path=tmp_path)
    except AssertionError as failure:
        if "another bench/c2b_load.py run is in progress" in str(failure):
            pytest.skip("another bench/c2b_load.py is running on this machine (one at a time)")
        raise
    finally:
        server_execute(f'DROP DATABASE IF EXISTS "{bench_database}_pgbench" WITH (FORCE)')
    assert_printed(
        output,
        *[
            rf"^{scenario} +{clients} .* ok\b"
            for scenario in ("spread", "hot")
            for clients in (1, 2)
        ],
        r"^SQL per confirmation",
    )


@pytest.mark.faults
def test_pg_failover_bench(tmp_path: Path) -> None:
    """The same rule as tests/faults/test_pg_failover.py: PostgreSQL suite, pg_auto_failover
    installed, else skipped with the reason."""
    postgresql_only()
    reason = pg_auto_failover.missing()
    if reason:
        pytest.skip(f"no pg_auto_failover here: {reason}")
    output = bench_run(
        BENCH / "faults" / "pg_failover.py", "--tiny", tmp_path=tmp_path, timeout=400
    )
    assert_printed(
        output,
        r"1 round\(s\): kill -> standby promoted [\d.]+-[\d.]+ s .*exactly-once ok",
    )


def test_engine_memory_bench(bench_database: str, tmp_path: Path) -> None:
    postgresql_only()
    output = bench_run(
        BENCH / "engine_memory.py",
        "--confirmations",
        "500",
        "--drivers",
        "5",
        "--pg-url",
        server_url(bench_database),
        "--db",
        bench_database,
        tmp_path=tmp_path,
    )
    assert_printed(
        output,
        r"^stored 500 confirmations in [\d.]+ s",
        r"^engine: 500 credited in [\d.]+ s \(\d+/s\), 0 left, exit 0",
    )
