"""A real server process (gunicorn, as `tuktuk serve` runs it) against the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
from django.db import connection

from tests.support.clock_at import child_clock_env
from tuktuk.backoffice.server import web_command

REPO_ROOT = Path(__file__).resolve().parents[2]
CALLBACK_TOKEN = "test-callback-token-0123456789"


def test_database_url() -> str:
    """The URL of the database pytest-django created, for another process to use."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[connection.vendor]
    auth = quote(s["USER"] or "")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    return f"{scheme}://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT']}/{s['NAME']}"


def child_env(*, database: bool = True, **extra: str) -> dict[str, str]:
    """The environment of every process a test starts: ours, with the repository importable,
    pointed at the test database (unless `database=False`), plus `extra`; under --clock-at also
    libfaketime's shifted clock (tests/support/clock_at.py)."""
    env = dict(os.environ)
    env.pop("TUKTUK_TEST_DATABASE_NAME", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    if database:
        env["TUKTUK_DATABASE_URL"] = test_database_url()
    env.update(extra)
    return child_clock_env(env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    token: str = CALLBACK_TOKEN

    def c2b_url(self, which: str) -> str:
        return f"{self.url}/c2b/{self.token}/{which}"


@contextmanager
def live_server_process(
    *,
    app: str = "tuktuk.wsgi:application",
    workers: int = 4,
    threads: int = 8,
    extra_env: dict[str, str] | None = None,
    ready_statuses: frozenset[int] | set[int] = frozenset({200}),
    access_log: bool = False,
    log_file: Path | None = None,
    database_url: str | None = None,
    port: int | None = None,
    new_session: bool = False,
    server: str = "gunicorn",
) -> Iterator[LiveServer]:
    """`database_url`: another database than the test database (e.g. a failover formation);
    `port`: listen there (a restarted server on its predecessor's port); `new_session`: its
    own process group, so a test can kill the arbiter and its workers at once (os.killpg);
    `server`: "gunicorn" or "granian" (tuktuk.backoffice.server.web_command)."""
    port = port or free_port()
    env = child_env(
        database=database_url is None,
        TUKTUK_CALLBACK_TOKEN=CALLBACK_TOKEN,
        TUKTUK_LOG_LEVEL="WARNING",
        **({"TUKTUK_DATABASE_URL": database_url} if database_url else {}),
        **(extra_env or {}),
    )
    command = web_command(
        server=server,
        host="127.0.0.1",
        port=port,
        workers=workers,
        threads=threads,
        app=app,
        access_log=access_log,
    )
    output = log_file.open("wb") if log_file else None
    process = subprocess.Popen(
        command,
        env=env,
        cwd=REPO_ROOT,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        start_new_session=new_session,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code in ready_statuses:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # readiness poll, not synchronisation of the code under test
        yield LiveServer(url=url, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if output:
            output.close()
