"""Load benchmark: C2B confirmations through the real HTTP endpoint vs pgbench, on PostgreSQL.

What it does, in order (see bench/README.md):

1. pgbench: drop + create its own database, `pgbench -i -s SCALE`, then the default TPC-B-like
   script at each client count (-j min(2, clients) -T DURATION). Its tps is the yardstick.
2. The service: drop + create its own database, `tuktuk migrate`, create the drivers through
   the fleet services, start the web server (tuktuk.backoffice.server.web_command: granian or
   gunicorn) on it, wait for GET /health, warm up. With --posting engine (the default) the
   endpoint stores and acknowledges and 1 or 2 posting engines (`tuktuk engine`, --engines)
   credit what it stored.
3. Each scenario (spread over many drivers, then one hot driver) at each concurrency: a closed
   loop of N keep-alive HTTP/1.1 connections POSTing Daraja-shaped confirmations for a fixed
   time. Every answer must be HTTP 200 with ResultCode 0. At the end of the window: how many
   were credited within it (credited/s) and how many still wait (backlog); then the engines
   drain the backlog, and SQL checks that the transactions in the database are exactly the
   successful requests (exactly-once sanity) and reads each one's credit latency (from storing
   the webhook to the commit of its credit: processed_at - received_at).
4. Stop the server, drop both databases, print the table (and --json).

The load generator is one asyncio process with raw sockets so that it takes as little of the
machine as possible; it still shares the CPUs with gunicorn and PostgreSQL, and the table says
how much of the machine it used.

Usage:  .venv/bin/python bench/c2b_load.py [--duration 10] [--workers 2 --threads 4] [--json F]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import fcntl
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvloop

from tuktuk.mpesa.c2b_payload import c2b_payload  # standard library only: no Django set-up

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TUKTUK = str(Path(PYTHON).with_name("tuktuk"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1
DRIVER_NUMBER_BASE = 300000  # bench drivers are DRV-300001, DRV-300002, ...


# --------------------------------------------------------------------------------------------
# Daraja payloads


# The payer is a passenger: bench drivers have 2547000xxxxx numbers, and a payment from a
# driver's own number may be taken for a debt repayment (another code path).
PASSENGER_MSISDN = "254790000001"


def bench_account(number: int) -> str:
    return f"BENCH{number:04d}"


# --------------------------------------------------------------------------------------------
# CPU accounting (Linux /proc): how much of the machine the client, gunicorn and the rest used


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


def process_tree_ticks(root_pid: int) -> int:
    """utime + stime jiffies of a process and its direct children (gunicorn master + workers)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(entry) == root_pid or int(fields[1]) == root_pid:
            total += int(fields[11]) + int(fields[12])
    return total


def postgres_backend_ticks(database: str) -> dict[int, int]:
    """utime + stime jiffies of each PostgreSQL backend connected to `database`, by pid."""
    ticks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                title = handle.read().replace(b"\0", b" ").split()
            if not title or title[0] != b"postgres:" or database.encode() not in title:
                continue
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    return ticks


@dataclass
class CpuShare:
    """Percentages of the whole machine (all CPUs = 100%) over one measured run."""

    machine_busy: float = 0.0
    client: float = 0.0  # the load generator (this process, or pgbench)
    server: float = 0.0  # the web server's processes (0 for pgbench)
    postgres: float = 0.0  # the backends connected to the benchmark's database
    engine: float = 0.0  # the posting engines' processes

    @property
    def other(self) -> float:
        """Everything else: PostgreSQL's background processes, the kernel, other programs."""
        used = self.client + self.server + self.postgres + self.engine
        return max(0.0, self.machine_busy - used)


class CpuMeter:
    """Measures a run's CPU use; a thread samples the backends, which may come and go."""

    def __init__(
        self,
        *,
        database: str,
        server_pid: int | None = None,
        client_is_child: bool = False,
        engine_pids: list[int] | None = None,
    ) -> None:
        self.database = database
        self.server_pid = server_pid
        self.engine_pids = engine_pids or []
        self.client_is_child = client_is_child
        self.stop = threading.Event()
        self.backends: dict[int, int] = {}

    def _client_seconds(self) -> float:
        who = resource.RUSAGE_CHILDREN if self.client_is_child else resource.RUSAGE_SELF
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    def _sample(self) -> None:
        while True:
            self.backends.update(postgres_backend_ticks(self.database))
            if self.stop.wait(0.5):
                return

    def __enter__(self) -> CpuMeter:
        self.baseline = postgres_backend_ticks(self.database)
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()
        self.started = time.perf_counter()
        self.machine = machine_ticks()
        self.client = self._client_seconds()
        self.server = process_tree_ticks(self.server_pid) if self.server_pid else 0
        self.engines = sum(process_tree_ticks(pid) for pid in self.engine_pids)
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.started
        busy, total = machine_ticks()
        client = self._client_seconds()
        server = process_tree_ticks(self.server_pid) if self.server_pid else 0
        engines = sum(process_tree_ticks(pid) for pid in self.engine_pids)
        self.stop.set()
        self.sampler.join()
        self.backends.update(postgres_backend_ticks(self.database))
        postgres = sum(t - self.baseline.get(pid, 0) for pid, t in self.backends.items())
        capacity = wall * CPUS
        self.share = CpuShare(
            machine_busy=100.0 * (busy - self.machine[0]) / max(1, total - self.machine[1]),
            client=100.0 * (client - self.client) / capacity,
            server=100.0 * (server - self.server) / CLK_TCK / capacity,
            postgres=100.0 * postgres / CLK_TCK / capacity,
            engine=100.0 * (engines - self.engines) / CLK_TCK / capacity,
        )


def background_load(seconds: float = 1.0) -> float:
    """Percent of the machine busy while we do nothing: other work skews the numbers."""
    before = machine_ticks()
    time.sleep(seconds)
    after = machine_ticks()
    return 100.0 * (after[0] - before[0]) / max(1, after[1] - before[1])


def settle(*, limit: float, patience: float) -> float:
    """Wait (up to `patience` s) until the machine is at most `limit`% busy; the last reading."""
    deadline = time.monotonic() + patience
    while True:
        load = background_load()
        if load <= limit or time.monotonic() >= deadline:
            return load


# --------------------------------------------------------------------------------------------
# PostgreSQL administration


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> PgServer:
        parts = urlsplit(url)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password or "",
        )

    def url(self, database: str) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgres://{auth}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(self.url(database), autocommit=True)

    def execute(self, statement: Any, database: str = "postgres") -> list[tuple[Any, ...]]:
        with self.connect(database) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def recreate(self, database: str) -> None:
        from psycopg import sql

        self.drop(database)
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

    def drop(self, database: str) -> None:
        from psycopg import sql

        self.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )

    def checkpoint(self) -> None:
        """Start every measured run with clean shared buffers, not mid-way through a checkpoint."""
        self.execute("CHECKPOINT")

    def vacuum(self, database: str) -> None:
        """VACUUM (ANALYZE) the database, as pgbench vacuums its tables before each of its runs:
        every window starts without the dead rows of the windows before it (each credited
        confirmation leaves one in the inbox, each batch one per driver), whether or not this
        server's autovacuum is on (it may be off: see bench/README.md)."""
        self.execute("VACUUM (ANALYZE)", database)

    def env(self) -> dict[str, str]:
        env = dict(os.environ, PGHOST=self.host, PGPORT=str(self.port), PGUSER=self.user)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


# --------------------------------------------------------------------------------------------
# Results


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))  # ceil
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class PgbenchResult:
    clients: int
    threads: int
    duration_s: float
    tps: float
    transactions: int
    p50_ms: float
    p99_ms: float
    cpu: CpuShare
    background_pct: float

    @property
    def pg_ms(self) -> float:
        """PostgreSQL backend CPU milliseconds per pgbench transaction."""
        cpu_seconds = self.cpu.postgres / 100.0 * CPUS * self.duration_s
        return cpu_seconds * 1000.0 / max(1, self.transactions)


@dataclass
class ScenarioResult:
    scenario: str
    concurrency: int
    duration_s: float
    ok: int
    errors: int
    rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu: CpuShare
    background_pct: float
    db_transactions: int
    db_callbacks_not_processed: int
    db_balance_mismatches: int
    engines: int = 0  # posting engines (0: posted inline by the request)
    credited_rate: float = 0.0  # credited within the load window, per second
    backlog: int = 0  # stored, not yet credited, at the end of the window
    drain_s: float = 0.0  # how long the engines took to credit that backlog
    credit_p50_ms: float = float("nan")
    credit_p99_ms: float = float("nan")
    error_samples: list[str] = field(default_factory=list)
    pgbench_tps: float | None = None

    @property
    def exactly_once(self) -> bool:
        return (
            self.db_transactions == self.ok
            and self.db_callbacks_not_processed == 0
            and self.db_balance_mismatches == 0
        )

    def cpu_ms(self, percent: float) -> float:
        """CPU milliseconds per successful confirmation for a CPU column."""
        return percent / 100.0 * CPUS * self.duration_s * 1000.0 / max(1, self.ok)

    @property
    def ratio(self) -> float | None:
        """Credited confirmations per second against pgbench's tps."""
        return self.credited_rate / self.pgbench_tps if self.pgbench_tps else None


# --------------------------------------------------------------------------------------------
# pgbench


PGBENCH_TPS = re.compile(r"tps = ([\d.]+) \(without initial connection time\)")
PGBENCH_COUNT = re.compile(r"number of transactions actually processed: (\d+)")


def pgbench_init(pg: PgServer, database: str, scale: int) -> None:
    pg.recreate(database)
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", str(scale), database],
        env=pg.env(),
        check=True,
        capture_output=True,
    )


def pgbench_run(
    pg: PgServer,
    database: str,
    *,
    clients: int,
    duration: int,
    log_dir: Path,
    background: Callable[[], float],
) -> PgbenchResult:
    threads = min(2, clients)
    prefix = log_dir / f"pgbench_c{clients}"
    pg.checkpoint()
    idle = background()
    with CpuMeter(database=database, client_is_child=True) as meter:
        done = subprocess.run(
            [
                "pgbench",
                f"--client={clients}",
                f"--jobs={threads}",
                f"--time={duration}",
                "--log",
                f"--log-prefix={prefix}",
                database,
            ],
            env=pg.env(),
            check=True,
            capture_output=True,
            text=True,
        )
    tps_match = PGBENCH_TPS.search(done.stdout)
    count_match = PGBENCH_COUNT.search(done.stdout)
    if tps_match is None or count_match is None:
        raise RuntimeError(f"cannot read pgbench output:\n{done.stdout}\n{done.stderr}")
    latencies: list[float] = []
    for log in log_dir.glob(f"{prefix.name}.*"):
        with log.open() as handle:
            latencies.extend(int(line.split()[2]) / 1000.0 for line in handle)
        log.unlink()
    latencies.sort()
    return PgbenchResult(
        clients=clients,
        threads=threads,
        duration_s=duration,
        tps=float(tps_match.group(1)),
        transactions=int(count_match.group(1)),
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        cpu=meter.share,
        background_pct=idle,
    )


# --------------------------------------------------------------------------------------------
# The service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(pg: PgServer, database: str, data_dir: Path, token: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in [n for n in env if n.startswith("TUKTUK_")]:
        del env[name]  # nothing from the caller's shell leaks into the measured configuration
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tuktuk.settings",
            "TUKTUK_DATABASE_URL": pg.url(database),
            "TUKTUK_DATA_DIR": str(data_dir),
            "TUKTUK_CALLBACK_TOKEN": token,
            "TUKTUK_LOG_LEVEL": "WARNING",
            "TUKTUK_DB_CONN_MAX_AGE": "60",
        }
    )
    return env


def seed_drivers(count: int) -> None:
    """Runs in a subprocess with the service's environment (see --seed-drivers)."""
    import django

    django.setup()
    from django.db import transaction

    from tuktuk.fleet.models import FleetSettings
    from tuktuk.fleet.services import (
        driver_left_to_target_refresh,
        driver_upsert,
        vehicle_upsert,
    )

    FleetSettings.load()
    driver_ids = []
    with transaction.atomic():
        for number in range(1, count + 1):
            vehicle = vehicle_upsert(
                vehicle_id=f"BENCH-{number:04d}", mpesa_account=bench_account(number)
            )
            driver, _ = driver_upsert(
                driver_id=f"DRV-{DRIVER_NUMBER_BASE + number:06d}",
                name=f"Bench Driver {number}",
                mpesa_number=f"07{number:08d}",
                vehicle=vehicle,
            )
            driver_ids.append(driver.driver_id)
        driver_left_to_target_refresh(driver_ids=driver_ids)


def count_queries(account: str, prefix: str) -> None:
    """Runs in a subprocess (see --count-queries): the SQL of one confirmation, as JSON.

    Posts through Django's test client (all middleware, no gunicorn) to a driver that has been
    paid before, so the count is that of the steady state.
    """
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    url = f"/c2b/{settings.CALLBACK_TOKEN}/confirmation"

    def post(number: int) -> Any:
        payload = c2b_payload(
            trans_id=f"{prefix}{number}", amount=100, account=account, msisdn=PASSENGER_MSISDN
        )
        return client.post(
            url, json.dumps(payload), content_type="application/json", HTTP_HOST="127.0.0.1"
        )

    engine = settings.POSTING_MODE == "engine"
    if engine:
        from tuktuk.mpesa.posting_engine import engine_drain
    post(1)
    if engine:
        engine_drain()
    with CaptureQueriesContext(connection) as captured:
        answer = post(2)
    statements = [q["sql"] for q in captured.captured_queries]
    counted = {
        "status": answer.status_code,
        **sql_counts(statements),
        "sql": [q[:160] for q in statements],
    }
    if engine:
        batch = 50  # the engine's SQL for a batch of 50, per confirmation
        for number in range(3, 3 + batch):
            post(number)
        with CaptureQueriesContext(connection) as captured:
            engine_drain(limit=batch)
        engine_sql = [q["sql"] for q in captured.captured_queries]
        counted["engine_per_confirmation"] = {
            key: value / batch for key, value in sql_counts(engine_sql).items()
        }
    print(json.dumps(counted))


def sql_counts(statements: list[str]) -> dict[str, int]:
    """Round trips, statements (without BEGIN/COMMIT and savepoints) and commits."""
    commits, inside = 0, False
    for sql in statements:
        if sql == "BEGIN":
            inside = True
        elif sql == "COMMIT":
            inside, commits = False, commits + 1
        elif not inside and sql.split(" ", 1)[0] in {"INSERT", "UPDATE", "DELETE"}:
            commits += 1  # a write in autocommit mode: its own transaction and WAL flush
    bookkeeping = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK")
    return {
        "round_trips": len(statements),
        "statements": sum(1 for q in statements if not q.startswith(bookkeeping)),
        "commits": commits,
    }


def service_source(env: dict[str, str]) -> str:
    """Where the service's code comes from, and the git commit when it is this checkout."""
    where = subprocess.run(
        [PYTHON, "-c", "import tuktuk; print(tuktuk.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    package = Path(where).parent
    if package.is_relative_to(REPO_ROOT):
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return f"{package} (this checkout, git {described or 'unknown'})"
    return str(package)


def http_get_status(port: int, path: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


@contextmanager
def web_server(
    env: dict[str, str], *, server: str, workers: int, threads: int, log_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    # Built by the service's own code (it may be another source tree than this checkout's).
    build = (
        "import json, sys; from tuktuk.backoffice.server import web_command; "
        "print(json.dumps(web_command(server=sys.argv[4], host='127.0.0.1', "
        "port=int(sys.argv[1]), workers=int(sys.argv[2]), threads=int(sys.argv[3]), "
        "access_log=False)))"
    )
    command = json.loads(
        subprocess.run(
            [PYTHON, "-c", build, str(port), str(workers), str(threads), server],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"{server} exited with {process.returncode}:\n{tail}")
            with suppress(OSError):
                if http_get_status(port, "/health") == 200:
                    break
            if time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"GET /health did not answer 200 within 60 s:\n{tail}")
            time.sleep(0.1)
        yield process, port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def posting_engines(
    env: dict[str, str], count: int, log_path: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` posting engines (`tuktuk engine`), stopped with SIGTERM afterwards."""
    with log_path.open("ab") as log:
        engines = [
            subprocess.Popen([TUKTUK, "engine"], env=env, cwd=REPO_ROOT, stdout=log, stderr=log)
            for _ in range(count)
        ]
    try:
        yield engines
    finally:
        for engine in engines:
            engine.send_signal(signal.SIGTERM)
        for engine in engines:
            try:
                engine.wait(timeout=20)
            except subprocess.TimeoutExpired:
                engine.kill()
                engine.wait()


def unposted(pg: PgServer, database: str) -> int:
    rows = pg.execute(
        "SELECT count(*) FROM mpesa_callback WHERE kind = 'c2b_confirmation' "
        "AND state = 'received'",
        database,
    )
    return int(rows[0][0])


def drain(pg: PgServer, database: str, *, timeout: float) -> float:
    """Wait until the engines have credited every stored confirmation; seconds it took."""
    started = time.monotonic()
    while unposted(pg, database):
        if time.monotonic() - started > timeout:
            break
        time.sleep(0.05)  # the engines are other processes: poll the database
    return time.monotonic() - started


def credit_latencies(pg: PgServer, database: str, prefix: str) -> tuple[float, float]:
    """p50, p99 milliseconds from storing a confirmation to the commit that credited it."""
    with pg.connect(database) as conn:
        p50, p99 = conn.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), "
            "percentile_cont(0.99) WITHIN GROUP (ORDER BY d) FROM ("
            "SELECT extract(epoch FROM processed_at - received_at) * 1000 AS d "
            "FROM mpesa_callback WHERE trans_id LIKE %s AND state = 'processed') t",
            [prefix + "%"],
        ).fetchone()
    return float(p50 if p50 is not None else "nan"), float(p99 if p99 is not None else "nan")


def credited_by(pg: PgServer, database: str, prefix: str, moment: float) -> int:
    """This run's confirmations credited by `moment` (a time.time() instant)."""
    with pg.connect(database) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM mpesa_callback WHERE trans_id LIKE %s "
                "AND state = 'processed' AND processed_at <= to_timestamp(%s)",
                [prefix + "%", moment],
            ).fetchone()[0]
        )


# --------------------------------------------------------------------------------------------
# The load generator: asyncio, one raw keep-alive HTTP/1.1 connection per concurrent client


@dataclass
class LoadStats:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    last_done: float = 0.0

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(message[:300])


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one HTTP/1.1 response (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        body = b"".join(chunks)
    else:
        body = await reader.read()
        headers["connection"] = "close"
    return status, body, headers.get("connection") != "close"


async def client_loop(
    *,
    port: int,
    path: str,
    next_body: Callable[[], bytes],
    deadline: float,
    stats: LoadStats,
    request_timeout: float,
) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    heads: dict[int, bytes] = {}  # by body length: a few amounts, a few lengths
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    perf = time.perf_counter
    while perf() < deadline:
        body = next_body()
        started = perf()
        try:
            async with asyncio.timeout(request_timeout):
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.get_extra_info("socket").setsockopt(
                        socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
                    )
                assert reader is not None
                length = len(body)
                if length not in heads:
                    heads[length] = head.replace("{length}", str(length)).encode()
                writer.write(heads[length] + body)
                status, answer, keep_alive = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as e:
            stats.error(f"{type(e).__name__}: {e}")
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.05)  # do not spin on a server that refuses connections
            continue
        done = perf()
        try:
            decoded = json.loads(answer)
        except ValueError:
            decoded = None
        result_code = decoded.get("ResultCode") if isinstance(decoded, dict) else None
        if status == 200 and str(result_code) == "0":
            stats.ok += 1
            stats.latencies.append(done - started)
        else:
            stats.error(f"HTTP {status}: {answer[:200]!r}")
        stats.last_done = max(stats.last_done, done)
        if not keep_alive:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def run_load(
    *,
    port: int,
    path: str,
    concurrency: int,
    duration: float,
    make_body: Callable[[random.Random], bytes],
    request_timeout: float,
    seed: int,
) -> tuple[LoadStats, float]:
    """Closed loop: each of `concurrency` connections sends its next request when answered."""
    stats = LoadStats()

    async def main() -> float:
        started = time.perf_counter()
        deadline = started + duration
        loops = []
        for index in range(concurrency):
            rng = random.Random(seed * 1000 + index)
            loops.append(
                client_loop(
                    port=port,
                    path=path,
                    next_body=lambda rng=rng: make_body(rng),
                    deadline=deadline,
                    stats=stats,
                    request_timeout=request_timeout,
                )
            )
        await asyncio.gather(*loops)
        return started

    # uvloop (a dev dependency): the same asyncio, with the event loop and transports in C,
    # for about half the load generator's CPU, which it shares with what it measures.
    started = uvloop.run(main())
    return stats, max(stats.last_done, started + 1e-9) - started


class TransIds:
    """Unique alphanumeric TransIDs: PREFIX + counter, PREFIX unique per scenario and run."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.counter = 0

    def __call__(self) -> str:
        self.counter += 1
        return f"{self.prefix}{self.counter:08d}"


AMOUNTS = ["50", "80", "100", "120", "150", "200", "250", "300"]
# Placeholders body_maker's templates are cut at: TransID-like, never in a payload otherwise.
_TRANS_ID_SLOT = "TRANSIDSLOT"
_MSISDN_SLOT = "MSISDNSLOT"


def body_maker(trans_ids: TransIds, accounts: list[str]) -> Callable[[random.Random], bytes]:
    """Daraja-shaped confirmations (c2b_payload's), a new TransID and payer each. Built from
    one template per account and amount, made when the scenario starts, with the TransID and
    the MSISDN written in: the load generator shares the CPUs with what it measures, and
    building and encoding the JSON per request took a quarter of its time."""
    when = dt.datetime.now(dt.UTC)
    templates: dict[tuple[str, str], tuple[bytes, bytes, bytes]] = {}
    for account in accounts:
        for amount in AMOUNTS:
            payload = c2b_payload(
                trans_id=_TRANS_ID_SLOT, amount=amount, account=account, msisdn=_MSISDN_SLOT,
                when=when,
            )  # fmt: skip
            before, rest = json.dumps(payload).encode().split(_TRANS_ID_SLOT.encode())
            middle, after = rest.split(_MSISDN_SLOT.encode())
            templates[account, amount] = before, middle, after

    def make(rng: random.Random) -> bytes:
        amount = rng.choice(AMOUNTS)
        account = accounts[0] if len(accounts) == 1 else rng.choice(accounts)
        before, middle, after = templates[account, amount]
        msisdn = f"25479{rng.randrange(10**7):07d}"
        return b"".join((before, trans_ids().encode(), middle, msisdn.encode(), after))

    return make


def verify(pg: PgServer, database: str, prefix: str) -> tuple[int, int, int]:
    """(transactions with this prefix, their callbacks not 'processed', balance mismatches)."""
    like = prefix + "%"
    with pg.connect(database) as conn:
        transactions = conn.execute(
            "SELECT count(*) FROM ledger_transaction WHERE trans_id LIKE %s", [like]
        ).fetchone()[0]
        not_processed = conn.execute(
            "SELECT count(*) FROM mpesa_callback WHERE trans_id LIKE %s AND state <> 'processed'",
            [like],
        ).fetchone()[0]
        # Each driver's cached balance must equal the ledger sum of its current business day.
        mismatches = conn.execute(
            """
            SELECT count(*) FROM fleet_driver d
            WHERE d.current_balance <> COALESCE(
                (SELECT sum(e.amount) FROM ledger_ledgerentry e
                 WHERE e.driver_id = d.id AND e.business_day = d.balance_day), 0)
            """
        ).fetchone()[0]
    return transactions, not_processed, mismatches


# --------------------------------------------------------------------------------------------
# Output


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def results_table(results: list[ScenarioResult]) -> str:
    header = (
        f"{'scenario':<8} {'conc':>4} {'eng':>3} {'ack/s':>7} {'ack p50':>7} {'ack p99':>7} "
        f"{'credit/s':>8} {'backlog':>7} {'cr p50':>6} {'cr p99':>6} "
        f"{'pgbench':>8} {'ratio':>6} {'errors':>6} {'exactly-once':>12} | "
        f"{'client':>6} {'web':>4} {'engine':>6} {'pg':>4} {'other':>5} {'idle':>4} | "
        f"{'app ms':>6} {'pg ms':>5}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        app = r.cpu.server + r.cpu.engine
        rows.append(
            f"{r.scenario:<8} {r.concurrency:>4} {r.engines:>3} {r.rate:>7.1f} "
            f"{r.p50_ms:>7.1f} {r.p99_ms:>7.1f} {r.credited_rate:>8.1f} {r.backlog:>7} "
            f"{r.credit_p50_ms:>6.0f} {r.credit_p99_ms:>6.0f} "
            f"{fmt(r.pgbench_tps, '.1f'):>8} {fmt(r.ratio, '.3f'):>6} "
            f"{r.errors:>6} {('ok' if r.exactly_once else 'MISMATCH'):>12} | "
            f"{r.cpu.client:>5.0f}% {r.cpu.server:>3.0f}% {r.cpu.engine:>5.0f}% "
            f"{r.cpu.postgres:>3.0f}% {r.cpu.other:>4.0f}% {r.background_pct:>3.0f}% | "
            f"{r.cpu_ms(app):>6.2f} {r.cpu_ms(r.cpu.postgres):>5.2f}"
        )
    return "\n".join(rows)


def pgbench_table(results: list[PgbenchResult]) -> str:
    header = (
        f"{'clients':>7} {'jobs':>4} {'tps':>8} {'p50 ms':>7} {'p99 ms':>7} | "
        f"{'pgbench':>7} {'pg':>4} {'other':>5} {'idle before':>11} | {'pg ms':>5}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        rows.append(
            f"{r.clients:>7} {r.threads:>4} {r.tps:>8.1f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} | "
            f"{r.cpu.client:>6.0f}% {r.cpu.postgres:>3.0f}% {r.cpu.other:>4.0f}% "
            f"{r.background_pct:>10.0f}% | "
            f"{r.pg_ms:>5.2f}"
        )
    return "\n".join(rows)


# Issue 15's targets: credited/s against pgbench at c=8 and c=32; at c=32 acknowledgement p99
# and credit-latency p99.
SPREAD_GOAL, HOT_GOAL, RATIO_GOAL_AT = 0.5, 0.4, (8, 32)
ACK_P99_GOAL_MS, CREDIT_P99_GOAL_MS, P99_GOAL_AT = 50.0, 250.0, 32


def targets_report(results: list[ScenarioResult]) -> list[str]:
    lines = []
    goals = {"spread": SPREAD_GOAL, "hot": HOT_GOAL}
    for r in results:
        if r.concurrency not in RATIO_GOAL_AT:
            continue
        goal = goals[r.scenario]
        met = r.ratio is not None and r.ratio >= goal
        lines.append(
            f"  {r.scenario:<6} c={r.concurrency:<3} engines={r.engines} credited "
            f"{fmt(r.ratio, '.3f')}x pgbench (target >= {goal}x): {'met' if met else 'NOT MET'}"
        )
    if not any(r.concurrency == P99_GOAL_AT for r in results):
        lines.append(f"  (the p99 targets are for c={P99_GOAL_AT}, which was not run)")
    for r in results:
        if r.concurrency == P99_GOAL_AT:
            ack_met = r.p99_ms < ACK_P99_GOAL_MS
            credit_met = r.credit_p99_ms < CREDIT_P99_GOAL_MS
            lines.append(
                f"  {r.scenario:<6} c={r.concurrency:<3} engines={r.engines} ack p99 "
                f"{r.p99_ms:.1f} ms (target < {ACK_P99_GOAL_MS:.0f}): "
                f"{'met' if ack_met else 'NOT MET'}; credit p99 {r.credit_p99_ms:.0f} ms "
                f"(target < {CREDIT_P99_GOAL_MS:.0f}): {'met' if credit_met else 'NOT MET'}"
            )
    return lines


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="C2B confirmation load vs pgbench on the same PostgreSQL server.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TUKTUK_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
        help="PostgreSQL server (superuser: the bench creates and drops databases)",
    )
    parser.add_argument("--db", default="tuktuk_bench", help="service database (recreated)")
    parser.add_argument("--pgbench-db", default="tuktuk_pgbench", help="pgbench's (recreated)")
    parser.add_argument("--pgbench-scale", type=int, default=10)
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up load")
    parser.add_argument("--drivers", type=int, default=200, help="drivers for the spread load")
    parser.add_argument(
        "--scenarios", default="spread,hot", help="spread (all drivers) and/or hot (one driver)"
    )
    parser.add_argument("--server", default="granian", help="web server: granian or gunicorn")
    parser.add_argument(
        "--workers",
        type=int,
        default=max(1, CPUS // 2),  # `tuktuk serve`'s (backoffice.server.default_web_workers)
        help="web server worker processes",
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument(
        "--posting",
        default="engine",
        choices=["engine", "inline"],
        help="engine: store, acknowledge, posting engines credit; inline: the request posts",
    )
    parser.add_argument(
        "--engines", default="1,2", help="comma-separated posting engine counts (--posting engine)"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=300.0, help="seconds to wait for the backlog"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the service (repeatable), e.g. TUKTUK_DB_CONN_MAX_AGE=0",
    )
    parser.add_argument(
        "--src",
        metavar="DIR",
        help="run the service from this source tree (put first on PYTHONPATH), e.g. a "
        "snapshot: git archive HEAD src | tar -x -C /tmp/snap, then --src /tmp/snap/src",
    )
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument(
        "--max-background",
        type=float,
        default=15.0,
        help="before each run wait until the idle machine is at most this %% busy ...",
    )
    parser.add_argument(
        "--settle", type=float, default=5.0, help="... but for at most this many seconds"
    )
    parser.add_argument("--skip-pgbench", action="store_true", help="no pgbench yardstick")
    parser.add_argument("--keep-databases", action="store_true", help="do not drop them at the end")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-query-count", action="store_true", help="skip counting SQL per confirmation"
    )
    parser.add_argument("--seed-drivers", type=int, help=argparse.SUPPRESS)  # internal
    parser.add_argument("--count-queries", nargs=2, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.engines = (
        [int(n) for n in args.engines.split(",") if n.strip()] if args.posting == "engine" else [0]
    )
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    unknown = set(args.scenarios) - {"spread", "hot"}
    if unknown:
        parser.error(f"unknown scenarios: {sorted(unknown)}")
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_scenario(
    *,
    args: argparse.Namespace,
    pg: PgServer,
    server_pid: int,
    port: int,
    path: str,
    scenario: str,
    concurrency: int,
    accounts: list[str],
    prefix: str,
    background: Callable[[], float],
    engine_pids: list[int],
) -> ScenarioResult:
    pg.vacuum(args.db)
    pg.checkpoint()
    idle = background()
    with CpuMeter(database=args.db, server_pid=server_pid, engine_pids=engine_pids) as meter:
        started = time.time()
        stats, elapsed = run_load(
            port=port,
            path=path,
            concurrency=concurrency,
            duration=args.duration,
            make_body=body_maker(TransIds(prefix), accounts),
            request_timeout=args.request_timeout,
            seed=args.seed + concurrency,
        )
        window_end = started + elapsed
        backlog = unposted(pg, args.db)
    # Inline, the answer comes after the credit: everything acknowledged is credited.
    credited = credited_by(pg, args.db, prefix, window_end) if engine_pids else stats.ok
    drain_s = drain(pg, args.db, timeout=args.drain_timeout) if engine_pids else 0.0
    latencies = sorted(stats.latencies)
    db_count, not_processed, mismatches = verify(pg, args.db, prefix)
    credit_p50, credit_p99 = credit_latencies(pg, args.db, prefix)
    return ScenarioResult(
        scenario=scenario,
        concurrency=concurrency,
        duration_s=round(elapsed, 3),
        ok=stats.ok,
        errors=stats.errors,
        rate=stats.ok / elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=(latencies[-1] if latencies else float("nan")) * 1000,
        cpu=meter.share,
        background_pct=idle,
        db_transactions=db_count,
        db_callbacks_not_processed=not_processed,
        db_balance_mismatches=mismatches,
        engines=len(engine_pids),
        credited_rate=credited / elapsed,
        backlog=backlog,
        drain_s=round(drain_s, 3),
        credit_p50_ms=credit_p50,
        credit_p99_ms=credit_p99,
        error_samples=stats.error_samples,
    )


def report(
    args: argparse.Namespace,
    source: str,
    results: list[ScenarioResult],
    pgbench_results: dict[int, PgbenchResult],
) -> list[ScenarioResult]:
    """Print the tables; return the runs that failed a correctness check."""
    print()
    print(
        f"C2B confirmations vs pgbench (TPC-B-like, -s {args.pgbench_scale}) on one PostgreSQL; "
        f"{args.server} {args.workers} workers x {args.threads} threads; posting "
        f"{args.posting} (engines: {', '.join(map(str, args.engines))}); "
        f"{args.drivers} drivers (spread) / 1 driver (hot); {args.duration} s per run."
    )
    print(f"Service code: {source}")
    print(
        f"The client, gunicorn and PostgreSQL share this {CPUS}-CPU machine. CPU columns are % "
        "of the whole machine during the run: client = this load generator, pg = the backends "
        "of the benchmark database, other = everything else; idle before = how busy the "
        "machine was just before the run, with nothing of ours running. app ms / pg ms = CPU "
        "milliseconds per confirmation in the web server + posting engines / in the PostgreSQL "
        "backends. ack = the webhook's answer; credit/s = credited within the window; backlog = "
        "stored, not credited, when the window ended; cr p50/p99 = credit latency, ms from "
        "storing to the credit's commit; ratio = credit/s / pgbench tps."
    )
    print()
    print(results_table(results))
    if pgbench_results:
        print()
        print("pgbench (its own client, pgbench, shares the machine too):")
        print(pgbench_table(list(pgbench_results.values())))
    print()
    print("Targets:")
    print("\n".join(targets_report(results)) if pgbench_results else "  (no pgbench run)")
    failed = [r for r in results if r.errors or not r.exactly_once]
    if failed:
        print()
        print("FAILED checks (errors or exactly-once mismatch):")
        for r in failed:
            print(
                f"  {r.scenario} c={r.concurrency}: {r.ok} ok, {r.errors} errors, "
                f"{r.db_transactions} transactions, {r.db_callbacks_not_processed} callbacks "
                f"not processed, {r.db_balance_mismatches} balance mismatches"
            )
            for sample in r.error_samples:
                print(f"    {sample}")
    return failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.seed_drivers is not None:
        seed_drivers(args.seed_drivers)
        return 0
    if args.count_queries is not None:
        count_queries(*args.count_queries)
        return 0

    # Two runs at once would drop each other's databases and share the CPUs: refuse.
    lock = open(Path(tempfile.gettempdir()) / "tuktuk-c2b-bench.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say("another bench/c2b_load.py run is in progress on this machine; try again later")
        return 2
    pg = PgServer.from_url(args.pg_url)
    work = Path(tempfile.mkdtemp(prefix="tuktuk-bench-"))
    token = secrets.token_urlsafe(24)
    env = service_env(pg, args.db, work / "data", token)
    env["TUKTUK_POSTING"] = args.posting
    env.update(item.split("=", 1) for item in args.env)
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [str(Path(args.src).resolve()), env.get("PYTHONPATH", "")] if p
        )
    run_tag = secrets.token_hex(2).upper()
    top = max(args.concurrency)

    def background() -> float:
        load = settle(limit=args.max_background, patience=args.settle)
        if load > args.max_background:
            say(f"  warning: the machine is {load:.0f}% busy before the run (others at work?)")
        return load

    source = service_source(env)
    say(
        f"c2b bench: {CPUS} CPUs shared by client, server, engines and PostgreSQL; {args.server} "
        f"{args.workers} workers x {args.threads} threads; {args.duration} s per run; "
        f"service code {source}"
    )
    pgbench_results: dict[int, PgbenchResult] = {}
    results: list[ScenarioResult] = []
    queries: dict[str, Any] | None = None
    try:
        if not args.skip_pgbench:
            say(f"pgbench: init -s {args.pgbench_scale} in {args.pgbench_db}")
            pgbench_init(pg, args.pgbench_db, args.pgbench_scale)
            for clients in args.concurrency:
                result = pgbench_run(
                    pg,
                    args.pgbench_db,
                    clients=clients,
                    duration=args.duration,
                    log_dir=work,
                    background=background,
                )
                pgbench_results[clients] = result
                say(f"  pgbench c={clients}: {result.tps:.1f} tps, p99 {result.p99_ms:.2f} ms")
            if not args.keep_databases:
                pg.drop(args.pgbench_db)

        say(f"service: database {args.db}, migrate, {args.drivers} drivers")
        pg.recreate(args.db)
        subprocess.run(
            [TUKTUK, "migrate", "--noinput", "-v", "0"], env=env, cwd=REPO_ROOT, check=True
        )
        subprocess.run(
            [PYTHON, __file__, "--seed-drivers", str(args.drivers)],
            env=env,
            cwd=REPO_ROOT,
            check=True,
        )
        accounts = [bench_account(n) for n in range(1, args.drivers + 1)]
        scenario_accounts = {"spread": accounts, "hot": accounts[:1]}
        path = f"/c2b/{token}/confirmation"
        log_path = work / "server.log"
        with web_server(
            env, server=args.server, workers=args.workers, threads=args.threads, log_path=log_path
        ) as (server, port):
            for engine_count in args.engines:
                with posting_engines(env, engine_count, work / "engines.log") as engines:
                    engine_pids = [engine.pid for engine in engines]
                    if args.warmup > 0:
                        say(f"warm-up: {args.warmup:.0f} s at c={top}, {engine_count} engines")
                        stats, _ = run_load(
                            port=port,
                            path=path,
                            concurrency=top,
                            duration=args.warmup,
                            make_body=body_maker(TransIds(f"W{run_tag}E{engine_count}N"), accounts),
                            request_timeout=args.request_timeout,
                            seed=args.seed,
                        )
                        if stats.errors:
                            say(f"  warm-up errors: {stats.errors} {stats.error_samples}")
                        if engine_pids:
                            drain(pg, args.db, timeout=args.drain_timeout)
                    for scenario in args.scenarios:
                        for concurrency in args.concurrency:
                            result = run_scenario(
                                args=args,
                                pg=pg,
                                server_pid=server.pid,
                                port=port,
                                path=path,
                                scenario=scenario,
                                concurrency=concurrency,
                                accounts=scenario_accounts[scenario],
                                prefix=f"{scenario[0].upper()}{run_tag}E{engine_count}C{concurrency}N",
                                background=background,
                                engine_pids=engine_pids,
                            )
                            pgb = pgbench_results.get(concurrency)
                            result.pgbench_tps = pgb.tps if pgb else None
                            results.append(result)
                            say(
                                f"  {scenario} c={concurrency} engines={engine_count}: ack "
                                f"{result.rate:.1f}/s (p99 {result.p99_ms:.1f} ms), credited "
                                f"{result.credited_rate:.1f}/s, backlog {result.backlog}, "
                                f"credit p99 {result.credit_p99_ms:.0f} ms, {result.ok} ok, "
                                f"{result.errors} errors, {result.db_transactions} in the database"
                            )
                    if any(engine.poll() is not None for engine in engines):
                        say("a posting engine died during the run")
            if server.poll() is not None:
                say(f"{args.server} died during the run:\n{log_path.read_text()[-3000:]}")
        problems = [
            line
            for path_ in (log_path, work / "engines.log")
            if path_.exists()
            for line in path_.read_text().splitlines()
            if "[INFO]" not in line and '"level": "INFO"' not in line
        ]
        if problems:
            say("server and engine logs, apart from INFO lines:\n" + "\n".join(problems[-30:]))
        if not args.no_query_count:
            counted = subprocess.run(
                [PYTHON, __file__, "--count-queries", accounts[0], f"Q{run_tag}N"],
                env=env,
                cwd=REPO_ROOT,
                check=True,
                capture_output=True,
                text=True,
            )
            queries = json.loads(counted.stdout.strip().splitlines()[-1])
    finally:
        if not args.keep_databases:
            with suppress(Exception):
                pg.drop(args.db)
            with suppress(Exception):
                pg.drop(args.pgbench_db)
        shutil.rmtree(work, ignore_errors=True)

    failed = report(args, source, results, pgbench_results)
    if queries is not None:
        print()
        print(
            f"SQL per confirmation request (steady state, Django test client): "
            f"{queries['round_trips']} round trips ({queries['statements']} statements + "
            f"BEGIN/COMMIT), {queries['commits']} commits; pgbench's TPC-B transaction: "
            "7 round trips, 1 commit."
        )
        if "engine_per_confirmation" in queries:
            per = queries["engine_per_confirmation"]
            print(
                f"The posting engine, per confirmation in a batch of 50: {per['round_trips']:.1f} "
                f"round trips ({per['statements']:.1f} statements), {per['commits']:.2f} commits."
            )
    if args.json:
        document = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cpus": CPUS,
            "service_code": source,
            "args": {
                k: v for k, v in vars(args).items() if k not in {"seed_drivers", "count_queries"}
            },
            "sql_per_confirmation": queries,
            "pgbench": [asdict(r) for r in pgbench_results.values()],
            "scenarios": [
                {**asdict(r), "ratio": r.ratio, "exactly_once": r.exactly_once} for r in results
            ],
        }
        Path(args.json).write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
