"""Run the test suite against SQLite, PostgreSQL and MariaDB, one pytest run per database.

Without a database server the PostgreSQL/MariaDB runs are skipped with a message; with CI=true
they are required and an unreachable server fails the run. Each run creates and drops its own
test database (pytest-django), named per run so parallel checkouts do not collide.

With --clock-at (or TUKTUK_TEST_CLOCK_AT) every test starts at that instant instead of the real
time, and the processes the tests start see the same shifted clock through libfaketime: a time
of day today in Africa/Nairobi (23:50, 00:00:30) or an ISO datetime; see tests/support/clock_at.py.

Usage: python tools/run_tests.py [--backends sqlite,postgresql,mariadb] [--clock-at INSTANT]
       [--parallel] [pytest args...]

With --parallel (or TUKTUK_TEST_PARALLEL=1) the databases' runs go at the same time, each into
its own log, printed whole as it ends; `make test` uses it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import IO

DEFAULT_URLS = {
    "sqlite": None,
    "postgresql": "postgres://postgres@127.0.0.1:5432/tuktuk",
    "mariadb": "mysql://root@127.0.0.1:3306/tuktuk",
}


def reachable(backend: str, url: str) -> str | None:
    """None when the server answers, else why not."""
    import dj_database_url

    cfg = dj_database_url.parse(url)
    try:
        if backend == "postgresql":
            import psycopg

            psycopg.connect(
                host=cfg["HOST"],
                port=cfg["PORT"] or 5432,
                user=cfg["USER"],
                password=cfg["PASSWORD"] or None,
                dbname="postgres",
                connect_timeout=3,
            ).close()
        elif backend == "mariadb":
            import pymysql

            pymysql.connect(
                host=cfg["HOST"],
                port=int(cfg["PORT"] or 3306),
                user=cfg["USER"],
                password=cfg["PASSWORD"] or "",
                connect_timeout=3,
            ).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _prepare(
    backend: str, *, clock_at: str, ci: bool
) -> tuple[dict[str, str] | None, str, str | None]:
    """(environment for the pytest run or None to skip, its data dir, the failure if any)."""
    env = dict(os.environ)
    data_dir = tempfile.mkdtemp(prefix=f"tuktuk-test-{backend}-")
    env["TUKTUK_DATA_DIR"] = data_dir
    env["TUKTUK_TEST_BACKEND"] = backend
    if clock_at:
        env["TUKTUK_TEST_CLOCK_AT"] = clock_at
    if backend == "sqlite":
        env["TUKTUK_DATABASE_URL"] = f"sqlite:///{data_dir}/tuktuk.sqlite3"
        return env, data_dir, None
    url = os.environ.get(f"TUKTUK_TEST_{backend.upper()}_URL", DEFAULT_URLS[backend])
    assert url is not None
    problem = reachable(backend, url)
    if problem:
        if ci:
            print(
                f"\n*** {backend}: server unreachable at {url} ({problem}); "
                "required because CI=true ***",
                flush=True,
            )
            return None, data_dir, "FAILED (unreachable)"
        print(
            f"\n*** {backend}: SKIPPED: no server at {url} ({problem}). "
            f"Set TUKTUK_TEST_{backend.upper()}_URL or start one. ***",
            flush=True,
        )
        return None, data_dir, "skipped (no server)"
    env["TUKTUK_DATABASE_URL"] = url
    env["TUKTUK_TEST_DATABASE_NAME"] = f"test_tuktuk_{os.getpid()}"
    return env, data_dir, None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default=os.environ.get("TUKTUK_TEST_BACKENDS", ""))
    parser.add_argument("--clock-at", default=os.environ.get("TUKTUK_TEST_CLOCK_AT", ""))
    # The suite keeps one core busy at a time (it waits on servers, workers and databases
    # much of the time), so on two cores the three databases' runs together take about as
    # long as the slowest alone. Their output is printed whole as each one ends.
    parser.add_argument(
        "--parallel",
        action="store_true",
        default=os.environ.get("TUKTUK_TEST_PARALLEL", "").lower() in {"1", "true", "yes"},
    )
    args, pytest_args = parser.parse_known_args()
    backends = [b for b in (args.backends or "sqlite,postgresql,mariadb").split(",") if b]
    ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    clock = f" (clock at {args.clock_at})" if args.clock_at else ""
    summary: list[tuple[str, str, float]] = []
    failed = False
    running: list[tuple[str, subprocess.Popen[bytes], str, float, IO[bytes]]] = []
    for backend in backends:
        env, data_dir, skipped = _prepare(backend, clock_at=args.clock_at, ci=ci)
        if env is None:
            summary.append((backend, skipped or "", 0.0))
            failed = failed or (skipped or "").startswith("FAILED")
            continue
        command = [sys.executable, "-m", "pytest", *pytest_args]
        started = time.monotonic()
        if not args.parallel:
            print(f"\n===== {backend}{clock} =====", flush=True)
            code = subprocess.call(command, env=env)
            elapsed = time.monotonic() - started
            summary.append((backend, "passed" if code == 0 else f"FAILED (exit {code})", elapsed))
            shutil.rmtree(data_dir, ignore_errors=True)
            failed = failed or code != 0
            continue
        log = open(os.path.join(data_dir, "pytest.log"), "wb")  # closed once the run ends
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        running.append((backend, process, data_dir, started, log))
    for backend, process, data_dir, started, log in running:
        code = process.wait()
        elapsed = time.monotonic() - started
        log.close()
        print(f"\n===== {backend}{clock} (in parallel) =====", flush=True)
        with open(os.path.join(data_dir, "pytest.log"), "rb") as output:
            sys.stdout.buffer.write(output.read())
        sys.stdout.flush()
        summary.append((backend, "passed" if code == 0 else f"FAILED (exit {code})", elapsed))
        shutil.rmtree(data_dir, ignore_errors=True)
        failed = failed or code != 0
    print(f"\n===== summary{clock} =====")
    for backend, outcome, elapsed in summary:
        print(f"{backend:11s} {outcome:28s} {elapsed:6.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
