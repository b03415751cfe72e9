"""Run the test suite against SQLite, PostgreSQL and MariaDB, one pytest run per database.

Without a database server the PostgreSQL/MariaDB runs are skipped with a message; with CI=true
they are required and an unreachable server fails the run. Each run creates and drops its own
test database (pytest-django), named per run so parallel checkouts do not collide.

With --clock-at (or TUKTUK_TEST_CLOCK_AT) every test starts at that instant instead of the real
time, and the processes the tests start see the same shifted clock through libfaketime: a time
of day today in Africa/Nairobi (23:50, 00:00:30) or an ISO datetime; see tests/support/clock_at.py.

Usage: python tools/run_tests.py [--backends sqlite,postgresql,mariadb] [--clock-at INSTANT]
       [pytest args...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default=os.environ.get("TUKTUK_TEST_BACKENDS", ""))
    parser.add_argument("--clock-at", default=os.environ.get("TUKTUK_TEST_CLOCK_AT", ""))
    args, pytest_args = parser.parse_known_args()
    backends = [b for b in (args.backends or "sqlite,postgresql,mariadb").split(",") if b]
    ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    clock = f" (clock at {args.clock_at})" if args.clock_at else ""
    summary: list[tuple[str, str, float]] = []
    failed = False
    for backend in backends:
        env = dict(os.environ)
        data_dir = tempfile.mkdtemp(prefix=f"tuktuk-test-{backend}-")
        env["TUKTUK_DATA_DIR"] = data_dir
        env["TUKTUK_TEST_BACKEND"] = backend
        if args.clock_at:
            env["TUKTUK_TEST_CLOCK_AT"] = args.clock_at
        if backend == "sqlite":
            env["TUKTUK_DATABASE_URL"] = f"sqlite:///{data_dir}/tuktuk.sqlite3"
        else:
            url = os.environ.get(f"TUKTUK_TEST_{backend.upper()}_URL", DEFAULT_URLS[backend])
            problem = reachable(backend, url)
            if problem:
                if ci:
                    print(
                        f"\n*** {backend}: server unreachable at {url} ({problem}); "
                        "required because CI=true ***",
                        flush=True,
                    )
                    summary.append((backend, "FAILED (unreachable)", 0.0))
                    failed = True
                else:
                    print(
                        f"\n*** {backend}: SKIPPED: no server at {url} ({problem}). "
                        f"Set TUKTUK_TEST_{backend.upper()}_URL or start one. ***",
                        flush=True,
                    )
                    summary.append((backend, "skipped (no server)", 0.0))
                continue
            env["TUKTUK_DATABASE_URL"] = url
            env["TUKTUK_TEST_DATABASE_NAME"] = f"test_tuktuk_{os.getpid()}"
        print(f"\n===== {backend}{clock} =====", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", "pytest", *pytest_args], env=env)
        elapsed = time.monotonic() - started
        summary.append((backend, "passed" if code == 0 else f"FAILED (exit {code})", elapsed))
        shutil.rmtree(data_dir, ignore_errors=True)
        failed = failed or code != 0
    print(f"\n===== summary{clock} =====")
    for backend, outcome, elapsed in summary:
        print(f"{backend:11s} {outcome:28s} {elapsed:6.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
