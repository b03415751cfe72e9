"""How we run the production HTTP server (gunicorn); shared by `tuktuk serve` and the tests."""

from __future__ import annotations

import sys
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger

from tuktuk.core.logs import redact


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
