"""`tuktuk serve`: the whole service, supervised (backoffice.supervisor): the production HTTP
server (gunicorn or granian; static files served by WhiteNoise), the background worker and, with
TUKTUK_POSTING=engine (the default), the posting engine that credits stored confirmations.
`--web-only` serves HTTP alone, for deployments that run the worker and engines elsewhere."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from tuktuk.backoffice.server import (
    WEB_SERVERS,
    default_engines,
    default_web_workers,
    web_command,
)
from tuktuk.backoffice.supervisor import Child, supervise, tuktuk_command
from tuktuk.mpesa.callbacks import POSTING_ENGINE


class Command(BaseCommand):
    help = (
        "Serve TukTuk Ledger (admin, API, M-Pesa callbacks) with the worker and the posting "
        "engine, supervised."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--server", choices=WEB_SERVERS, default="granian")
        parser.add_argument(
            "--workers",
            type=int,
            default=default_web_workers(),
            help="web server processes (default: half the CPUs, at least 1)",
        )
        parser.add_argument("--threads", type=int, default=4)
        parser.add_argument(
            "--engines",
            type=int,
            help=(
                "posting engines, with TUKTUK_POSTING=engine (default: one per two CPUs; "
                "1 on SQLite)"
            ),
        )
        parser.add_argument(
            "--web-only", action="store_true", help="only the HTTP server: no worker, no engine"
        )
        parser.add_argument(
            "--skip-collectstatic", action="store_true", help="Static files already collected."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["skip_collectstatic"]:
            call_command("collectstatic", interactive=False, verbosity=0)
        host, port = options["host"], options["port"]
        shown_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104
        self.stdout.write(f"TukTuk Ledger admin: http://{shown_host}:{port}/admin/")
        children = [
            Child(
                "web",
                web_command(
                    server=options["server"],
                    host=host,
                    port=port,
                    workers=options["workers"],
                    threads=options["threads"],
                ),
            )
        ]
        if not options["web_only"]:
            children.append(Child("worker", tuktuk_command("worker")))
            if settings.POSTING_MODE == POSTING_ENGINE:
                engines = options["engines"] or default_engines(
                    settings.DATABASES["default"]["ENGINE"]
                )
                children += [
                    Child(f"engine-{n}", tuktuk_command("engine")) for n in range(1, engines + 1)
                ]
        self.stdout.write("Running: " + ", ".join(child.name for child in children))
        self.stdout.flush()
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        supervise(children, stop=stop)
