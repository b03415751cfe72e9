"""Posting engines (`tuktuk engine`) as separate processes against the test database, and
storing confirmations the way the webhook stores them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tests.support.c2b import PAYER_MSISDN, confirmation_payload
from tests.support.live_server import REPO_ROOT, child_env
from tests.support.payouts import wait_until
from tuktuk.mpesa.callbacks import callback_store
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState


def store(
    trans_id: str, amount: str, *, account: str = "TUK001", msisdn: str = PAYER_MSISDN
) -> int:
    """The webhook's first step: the raw confirmation stored (and committed) as received."""
    payload = confirmation_payload(trans_id=trans_id, amount=amount, account=account, msisdn=msisdn)
    body = json.dumps(payload)
    return callback_store(
        kind=CallbackKind.C2B_CONFIRMATION,
        body=body.encode(),
        content_type="application/json",
        remote_addr="127.0.0.1",
    ).pk


def unposted() -> int:
    return Callback.objects.filter(
        kind=CallbackKind.C2B_CONFIRMATION, state=CallbackState.RECEIVED
    ).count()


def wait_drained(*, timeout: float = 120) -> None:
    """Until the engines have posted every stored confirmation (another process does it: there
    is no event here to wait on, so the database is polled)."""
    wait_until(lambda: unposted() == 0, timeout=timeout, what="the engines to drain the inbox")


class Engines:
    """`tuktuk engine` processes, started and killed like an operator (or a crash) would."""

    def __init__(self, **env: str) -> None:
        self.env = child_env(TUKTUK_LOG_LEVEL="WARNING", TUKTUK_POSTING="engine", **env)
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(
        self, count: int = 1, *args: str, command: Sequence[str] = ("-m", "tuktuk", "engine")
    ) -> list[subprocess.Popen[bytes]]:
        started = [
            subprocess.Popen([sys.executable, *command, *args], env=self.env, cwd=REPO_ROOT)
            for _ in range(count)
        ]
        self.processes += started
        return started

    def stop(self, sig: int = signal.SIGTERM) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(sig)
            process.wait(timeout=30)
        self.processes.clear()


@contextmanager
def engines_running(
    count: int = 2, *, command: Sequence[str] = ("-m", "tuktuk", "engine"), **env: str
) -> Iterator[Engines]:
    engines = Engines(**env)
    engines.start(count, command=command)
    try:
        yield engines
    finally:
        engines.stop()
