"""A running `tuktuk worker` outlives the loss of its database connection (PostgreSQL).

The database side really drops the worker's connection (pg_terminate_backend, as a failover or a
server restart does); the worker must log it, reconnect and carry on, without a restart.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.support.live_server import REPO_ROOT, child_env
from tuktuk.backoffice.models import ScheduledRun

pytestmark = pytest.mark.django_db(transaction=True)

APP_NAME = "tuktuk-worker-outage-test"


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    if connection.vendor != "postgresql":
        pytest.skip("terminates a PostgreSQL backend")
    log = tmp_path / "worker.log"
    env = child_env(
        # A scheduled reconciliation on every pass: each pass leaves a visible timestamp.
        TUKTUK_RECONCILE_EVERY_HOURS="0.00001",
        # Off, so the dropped connection is found by a failing query, not by the check.
        TUKTUK_DB_CONN_HEALTH_CHECKS="false",
        TUKTUK_LOG_LEVEL="WARNING",
        PGAPPNAME=APP_NAME,  # libpq: tells the worker's backend apart from everyone else's
    )
    tuktuk = str(Path(sys.executable).with_name("tuktuk"))
    with log.open("wb") as output:
        process = subprocess.Popen(
            [tuktuk, "worker", "--interval", "0.1"],
            env=env,
            cwd=REPO_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process, log
        finally:
            process.terminate()
            process.wait(timeout=20)


def last_run() -> object:
    row = ScheduledRun.objects.filter(name="reconcile-scheduled").first()
    return row.last_run_at if row else None


def wait_for(condition: object, *, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not condition():  # type: ignore[operator]
        assert process.poll() is None, f"the worker exited ({process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling the database for the worker's next pass


def test_the_worker_reconnects_after_its_connection_is_killed(
    worker: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, log = worker
    wait_for(lambda: last_run() is not None, what="the first pass", process=process)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [APP_NAME],
        )
        assert cursor.fetchall(), "the worker had no connection to kill"
    before = last_run()
    wait_for(lambda: last_run() != before, what="a pass after the outage", process=process)
    assert process.poll() is None
    assert "worker pass failed on a database error" in log.read_text()
