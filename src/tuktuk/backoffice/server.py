"""How we run the production HTTP server (gunicorn or granian); shared by `tuktuk serve` and the
tests. Both serve the same WSGI application, tuktuk.wsgi:application."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Literal

from gunicorn.glogging import Logger as GunicornLogger

from tuktuk.core.logs import redact

WebServer = Literal["gunicorn", "granian"]
WEB_SERVERS: tuple[WebServer, ...] = ("gunicorn", "granian")


def default_web_workers() -> int:
    """`tuktuk serve`'s web worker processes: half the CPUs, at least one. The web server only
    stores and acknowledges; the posting engines credit. On two cores, one worker (4 threads)
    leaves the engines enough CPU to keep up, where two acknowledged faster than the engines
    could credit and a backlog built: credit p99 at 32 concurrent senders 129-172 ms against
    384-542 ms (bench/results-c2b.md, 2026-12-07)."""
    return max(1, (os.cpu_count() or 1) // 2)


def default_engines(database_engine: str) -> int:
    """`tuktuk serve`'s posting engines: one per two CPUs, at least one (they share the inbox
    with SKIP LOCKED); one on SQLite, where a batch holds the database's only write lock.

    On two CPUs, one engine credited more per second than two in every scenario of four runs
    of bench/c2b_load.py (the second engine's CPU and its waits on the first one's driver
    locks cost more than its share of the work), with credit p99 at c=32 of
    146-232 ms, under the 250 ms target (two engines: 96-159 ms). Larger machines: not
    measured; the rule follows the web workers'."""
    if database_engine.endswith("sqlite3"):
        return 1
    return max(1, (os.cpu_count() or 1) // 2)


def web_command(
    *,
    server: str,
    host: str,
    port: int,
    workers: int,
    threads: int,
    app: str = "tuktuk.wsgi:application",
    access_log: bool = True,
) -> list[str]:
    """The command line that serves `app` with `server` (one of WEB_SERVERS): `workers`
    processes of `threads` request threads each (so at most workers × threads database
    connections), on host:port."""
    commands = {"gunicorn": gunicorn_command, "granian": granian_command}
    if server not in commands:
        raise ValueError(f"unknown web server {server!r}: one of {', '.join(WEB_SERVERS)}")
    return commands[server](
        host=host, port=port, workers=workers, threads=threads, app=app, access_log=access_log
    )


def gunicorn_command(
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    app: str = "tuktuk.wsgi:application",
    access_log: bool = True,
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        # Daraja gives up on a callback after about 8 s; a stuck request must not hold a worker.
        "--timeout",
        "30",
        "--graceful-timeout",
        "10",
        "--error-logfile",
        "-",
        "--logger-class",
        "tuktuk.backoffice.server.RedactingGunicornLogger",
    ]
    if access_log:
        command += ["--access-logfile", "-"]
    return command


class RedactingGunicornLogger(GunicornLogger):
    """gunicorn's logger with the callback token taken out of access-log request lines."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms


def granian_command(
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    app: str = "tuktuk.wsgi:application",
    access_log: bool = True,
) -> list[str]:
    """Granian (a Rust HTTP server) running the WSGI application, as gunicorn_command does.

    Its access log (the `granian.access` logger, in each worker) is redacted by the filter that
    redact_granian_access_log() adds when tuktuk.wsgi is imported: an app that does not import
    tuktuk.wsgi must be served with access_log=False."""
    command = [
        sys.executable,
        "-m",
        "granian",
        app,
        "--interface",
        "wsgi",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        # The Python threads that run requests, as gunicorn's --threads: each keeps its own
        # database connection, so this bounds the connections (granian's default for WSGI is
        # half the backpressure, hundreds of threads). Its backpressure stays at the default:
        # it counts connections, not requests, and keep-alive connections beyond it would wait.
        "--blocking-threads",
        str(threads),
        "--http1-keep-alive",
        "--no-ws",
        # gunicorn's arbiter replaces a worker that died; granian's would stop the server.
        "--respawn-failed-workers",
        "--workers-kill-timeout",
        "10",
    ]
    command += ["--access-log"] if access_log else ["--no-access-log"]
    return command


GRANIAN_ACCESS_LOGGER = "granian.access"


class RedactingAccessFilter(logging.Filter):
    """Takes the callback token out of a granian access-log line (its path atom)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def redact_granian_access_log() -> None:
    """Adds the filter to granian's access logger (once). A logger's filters survive the
    dictConfig calls of granian and of Django, whichever runs first."""
    access = logging.getLogger(GRANIAN_ACCESS_LOGGER)
    if not any(isinstance(f, RedactingAccessFilter) for f in access.filters):
        access.addFilter(RedactingAccessFilter())
