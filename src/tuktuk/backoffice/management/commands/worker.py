"""`tuktuk worker [--once] [--interval SECONDS]`: the background jobs (see operations.worker)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tuktuk.backoffice.worker import WorkerState, worker_tick
from tuktuk.core import jsonutil


class Command(BaseCommand):
    help = "Run the background worker: day close, scheduled reconciliation, alerts, replays."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument("--interval", type=float, default=30.0, help="seconds between passes")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        state = WorkerState()
        while True:
            report = worker_tick(state)
            if options["once"]:
                self.stdout.write(jsonutil.dumps(report))
                return
            # Waiting on the event (not sleeping) lets SIGTERM stop the worker at once.
            if stop.wait(options["interval"]):
                return
