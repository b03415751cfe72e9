"""How we run the production HTTP server (gunicorn); shared by `tuktuk serve` and the tests."""

from __future__ import annotations

import sys


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
        "tuktuk.core.logs.RedactingGunicornLogger",
    ]
    if access_log:
        command += ["--access-logfile", "-"]
    return command
