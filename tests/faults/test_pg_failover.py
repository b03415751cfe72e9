"""The PostgreSQL primary dies under C2B load; pg_auto_failover promotes the synchronous standby.

PostgreSQL only, and only where Debian's pg-auto-failover-cli and postgresql-15-auto-failover
are installed (`make bench-failover` installs them and runs the larger version of this); skipped
with the reason otherwise. About 1-3 minutes. The scenario and every check it makes:
tests/support/failover_scenario.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support import pg_auto_failover
from tests.support.failover_scenario import failover_run

pytestmark = pytest.mark.faults


def test_no_acknowledged_payment_is_lost_or_doubled_when_the_primary_dies(tmp_path: Path) -> None:
    if os.environ.get("TUKTUK_TEST_BACKEND") != "postgresql":
        pytest.skip("PostgreSQL only: a pg_auto_failover formation (run with the postgresql suite)")
    reason = pg_auto_failover.missing()
    if reason:
        pytest.skip(f"no pg_auto_failover here: {reason}")
    report = failover_run(
        work=tmp_path, warmup=30, after=30, senders=8, workers=2, threads=4, burst=16, timeout=180
    )
    summary = json.dumps(report.summary(), indent=1)
    assert report.problems() == [], summary
    # Acknowledged before the kill, on the old primary: on the new one all the same.
    assert sum(1 for t in report.acked.values() if t < report.killed_at) >= 30, summary
