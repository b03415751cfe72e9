"""`tuktuk serve` runs the whole service, supervised: the web server, the worker and the posting
engine. A fare is credited with nothing else started; an engine killed by SIGKILL is restarted
and the next fare is credited too; SIGTERM stops every process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.c2b import confirmation_payload
from tests.support.factories import make_driver
from tests.support.live_server import CALLBACK_TOKEN, REPO_ROOT, child_env, free_port
from tests.support.payouts import wait_until
from tuktuk.backoffice.portal.models import DriverAccount
from tuktuk.backoffice.portal.services import driver_pin_set
from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import Transaction

pytestmark = pytest.mark.django_db(transaction=True)

PIN = "4812"


def children_of(pid: int) -> dict[int, str]:
    """The direct child processes of `pid`, with their command lines (from /proc)."""
    found: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                child = int(stat.parent.name)
                found[child] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return found


def engine_pids(serve_pid: int) -> set[int]:
    return {pid for pid, cmd in children_of(serve_pid).items() if " engine" in cmd}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = child_env(
        TUKTUK_POSTING="engine",
        TUKTUK_CALLBACK_TOKEN=CALLBACK_TOKEN,
        TUKTUK_LOG_LEVEL="WARNING",
        TUKTUK_ENGINE_POLL_SECONDS="0.05",
    )
    command = [sys.executable, "-m", "tuktuk", "serve", "--port", str(port), "--workers", "1"]
    command += ["--engines", "1"]  # the one the test kills
    process = subprocess.Popen([*command, "--skip-collectstatic"], env=env, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url), timeout=60, what="tuktuk serve to answer")
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _pay(url: str, trans_id: str) -> None:
    body = json.dumps(confirmation_payload(trans_id=trans_id, amount="100", account="TUK001"))
    answer = httpx.post(
        f"{url}/c2b/{CALLBACK_TOKEN}/confirmation",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200 and answer.json()["ResultCode"] == 0


def _credited(trans_id: str) -> bool:
    return Transaction.objects.filter(trans_id=trans_id, driver__isnull=False).exists()


def _portal_fare_page(url: str, driver: Driver, trans_id: str) -> httpx.Response:
    """The driver's own page for a fare, through the served portal (login with CSRF)."""
    with httpx.Client(base_url=url, timeout=30) as browser:
        form = browser.get("/portal/login").text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        assert token is not None
        login = browser.post(
            "/portal/login",
            data={"phone": driver.mpesa_number, "pin": PIN, "csrfmiddlewaretoken": token[1]},
        )
        assert login.status_code == 302, login.text[:300]
        return browser.get(f"/portal/fares/{trans_id}")


def test_serve_alone_credits_fares_and_restarts_a_killed_engine(
    served: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, url = served
    driver = make_driver(1)
    driver_pin_set(driver_id=driver.driver_id, pin=PIN, actor="root")
    DriverAccount.objects.filter(driver=driver).update(must_change_pin=False)
    _pay(url, "SERVE001")
    wait_until(lambda: _credited("SERVE001"), timeout=30, what="the engine to credit the fare")
    # As soon as it is credited, the driver sees it in the portal, with their share.
    fare = _portal_fare_page(url, driver, "SERVE001")
    share = Transaction.objects.get(trans_id="SERVE001").driver_share
    assert fare.status_code == 200 and f"{share:,.2f}" in fare.text
    names = " ".join(children_of(process.pid).values())
    assert "worker" in names and " engine" in names
    (engine,) = engine_pids(process.pid)
    os.kill(engine, signal.SIGKILL)
    wait_until(
        lambda: engine_pids(process.pid) - {engine} != set(),
        timeout=30,
        what="the supervisor to start a new engine",
    )
    _pay(url, "SERVE002")
    wait_until(lambda: _credited("SERVE002"), timeout=30, what="the new engine to credit")
    children = set(children_of(process.pid))
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)  # none left running
