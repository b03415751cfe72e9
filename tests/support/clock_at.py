"""`--clock-at`: run the suite as if the wall clock read a chosen instant (pytest plugin).

    pytest --clock-at 23:50                     # today, 23:50 Africa/Nairobi
    pytest --clock-at 00:00:30
    pytest --clock-at 2026-03-10T23:59:30       # naive means Africa/Nairobi
    TUKTUK_TEST_CLOCK_AT=23:50 pytest           # the same, for tools/run_tests.py and make

In the test process every test starts under `time_machine.travel(instant, tick=True)`, so each
one begins exactly at the instant and time then moves on; tests that pin their own time with
`time_machine.travel` nest inside it. Processes the tests start (gunicorn, `tuktuk worker`, the
CLI, `tuktuk daraja-sim`) get their environment from `child_clock_env()` (through
`tests.support.live_server.child_env`): libfaketime preloaded with one fixed offset, computed when
the session starts, so every child sees the same shifted clock (the instant plus the time the
session has been running).

libfaketime 0.9.10 (Debian 12) and Python 3.11 only get along in one mode:
- faking CLOCK_MONOTONIC (the default) hangs every timed wait on a lock: Python waits with
  sem_clockwait(CLOCK_MONOTONIC, deadline) computed from the faked monotonic clock, libfaketime
  does not intercept sem_clockwait, so the real clock never reaches the deadline
  (threading.Event.wait, Lock.acquire(timeout=...), queue.Queue.get(timeout=...));
- FAKETIME_DONT_FAKE_MONOTONIC=1 fixes those but breaks time.sleep: Python sleeps with
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) and 0.9.10 shifts that deadline by the faked
  wall-clock start time whatever the monotonic setting, giving a negative time: EINVAL
  (fixed upstream after 0.9.10, wolfcw/libfaketime#426).
So children run with FAKETIME_DONT_FAKE_MONOTONIC=1 and `faketime_site/sitecustomize.py`, which
replaces time.sleep with a select() timeout (a relative timeout libfaketime leaves alone).
NO_FAKE_STAT=1 keeps file times real: we move the clock, not the files. (Debian's build already
misses them, it wraps stat and __xstat64 but not the stat64/statx that glibc 2.36 programs call;
a build that shifted them would shift gunicorn's worker heartbeat, an mtime it compares with
time.monotonic(), by the offset, and with a negative offset the arbiter would kill every worker.)

PYTEST_DONT_REWRITE: conftest imports this module (through live_server) before registering it
as a plugin, and it has no asserts to rewrite.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import subprocess
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import time_machine

from tests.support.clock import NAIROBI

ENV_VAR = "TUKTUK_TEST_CLOCK_AT"
LIBRARY_ENV_VAR = "TUKTUK_LIBFAKETIME"
SITE_DIR = Path(__file__).resolve().parent / "faketime_site"


@dataclass(frozen=True)
class ShiftedClock:
    instant: dt.datetime  # where every test starts
    offset: float  # seconds from the real clock, fixed at session start, for the children
    env: dict[str, str]  # libfaketime's variables for the children


_clock: ShiftedClock | None = None


def clock_at_parse(value: str, *, today: dt.date) -> dt.datetime:
    """A time of day (today, Africa/Nairobi) or an ISO datetime (naive means Africa/Nairobi)."""
    text = value.strip()
    try:
        time_of_day = dt.time.fromisoformat(text)
    except ValueError:
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise pytest.UsageError(
                f"--clock-at {value!r}: expected a time of day (23:50, 00:00:30) "
                "or an ISO datetime (2026-03-10T23:50)"
            ) from None
        return moment if moment.tzinfo else moment.replace(tzinfo=NAIROBI)
    return dt.datetime.combine(today, time_of_day, tzinfo=time_of_day.tzinfo or NAIROBI)


def libfaketime_path() -> str:
    if os.environ.get(LIBRARY_ENV_VAR):
        return os.environ[LIBRARY_ENV_VAR]
    for pattern in (
        "/usr/lib/*/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    try:
        listed = subprocess.run(
            ["dpkg", "-L", "libfaketime"], capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = []
    for path in listed:
        if path.endswith("/libfaketime.so.1"):
            return path
    raise pytest.UsageError(
        "--clock-at needs libfaketime for the processes the tests start: "
        f"apt-get install -y faketime (or set {LIBRARY_ENV_VAR})"
    )


def faketime_env(offset: float) -> dict[str, str]:
    return {
        "LD_PRELOAD": libfaketime_path(),
        # A relative offset in plain seconds: libfaketime reads "+3h20m" as 3 minutes (it
        # multiplies the leading number by the first unit letter it finds).
        "FAKETIME": f"{offset:+.6f}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "NO_FAKE_STAT": "1",
        "PYTHONPATH": str(SITE_DIR),
    }


def child_clock_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a child process, under --clock-at with libfaketime's shifted clock added. A
    child given its own FAKETIME (faketime_env, e.g. the fault campaign's midnight) keeps it."""
    if _clock is None or "FAKETIME" in env:
        return env
    env = dict(env)
    for name, value in _clock.env.items():
        if name in ("LD_PRELOAD", "PYTHONPATH"):
            value = os.pathsep.join(v for v in (value, env.get(name, "")) if v)
        env[name] = value
    return env


SELF_CHECK = """
import json, queue, threading, time
start = time.time()
time.sleep(0.01)
threading.Event().wait(0.01)
threading.Lock().acquire(timeout=0.01)
try:
    queue.Queue().get(timeout=0.01)
except queue.Empty:
    pass
print(json.dumps({"time": start}))
"""


def _self_check(clock: ShiftedClock) -> None:
    """Fail the session early unless a child really sees the shifted clock and can wait."""
    env = child_clock_env(dict(os.environ))
    expected = time.time() + clock.offset
    try:
        done = subprocess.run(
            [sys.executable, "-c", SELF_CHECK], env=env, capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        raise pytest.UsageError(f"--clock-at: a child under {clock.env} hung") from None
    if done.returncode != 0:
        raise pytest.UsageError(f"--clock-at: a child under {clock.env} failed:\n{done.stderr}")
    seen = json.loads(done.stdout)["time"]
    if abs(seen - expected) > 10:
        raise pytest.UsageError(
            f"--clock-at: a child under {clock.env} reads {seen}, expected about {expected}"
        )


def children_now() -> dt.datetime:
    """What the clock reads in the processes the tests start (the live server, the worker): the
    real clock, shifted under --clock-at. Not this process's clock: here every test starts at the
    instant, while the children's clock has run on since the session started, so after ten
    minutes of `--clock-at 23:50` they are on the next business day. A test that must post into
    the live server's business day takes its date from here."""
    offset = _clock.offset if _clock is not None else 0.0
    # The real clock even under a test's time_machine.travel (the escape hatch refuses to
    # answer when nothing travels).
    hatch = time_machine.escape_hatch
    real = hatch.time.time() if hatch.is_travelling() else time.time()
    return dt.datetime.fromtimestamp(real + offset, tz=NAIROBI)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock-at",
        default=os.environ.get(ENV_VAR) or None,
        metavar="INSTANT",
        help="start every test at this instant: a time of day today in Africa/Nairobi "
        "(23:50, 00:00:30) or an ISO datetime; processes the tests start see the same "
        f"shifted clock through libfaketime (default: ${ENV_VAR})",
    )


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("clock_at")
    if not value:
        return
    real_now = time.time()
    instant = clock_at_parse(value, today=dt.datetime.now(NAIROBI).date())
    offset = instant.timestamp() - real_now
    global _clock
    _clock = ShiftedClock(instant=instant, offset=offset, env=faketime_env(offset))
    _self_check(_clock)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _clock
    _clock = None


def pytest_report_header(config: pytest.Config) -> str | None:
    if _clock is None:
        return None
    return (
        f"clock at {_clock.instant.isoformat()} for every test; "
        f"children: FAKETIME={_clock.env['FAKETIME']} (from session start) with "
        "FAKETIME_DONT_FAKE_MONOTONIC=1, NO_FAKE_STAT=1 and the sleep shim"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[Any]:
    """Setup, call and teardown of each test under the shifted clock."""
    if _clock is None:
        return (yield)
    with time_machine.travel(_clock.instant, tick=True):
        return (yield)
