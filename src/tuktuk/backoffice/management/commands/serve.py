"""`tuktuk serve`: the production HTTP server (gunicorn), static files served by WhiteNoise."""

from __future__ import annotations

import os
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from tuktuk.backoffice.server import gunicorn_command


class Command(BaseCommand):
    help = "Serve TukTuk Ledger with gunicorn (admin, API, M-Pesa callbacks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=min(4, (os.cpu_count() or 1) * 2))
        parser.add_argument("--threads", type=int, default=4)
        parser.add_argument(
            "--skip-collectstatic", action="store_true", help="Static files already collected."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["skip_collectstatic"]:
            call_command("collectstatic", interactive=False, verbosity=0)
        host, port = options["host"], options["port"]
        shown_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104
        self.stdout.write(f"TukTuk Ledger admin: http://{shown_host}:{port}/admin/")
        self.stdout.flush()
        command = gunicorn_command(
            host=host, port=port, workers=options["workers"], threads=options["threads"]
        )
        os.execv(command[0], command)  # noqa: S606 - replace this process with gunicorn
