"""`tuktuk worker [--once] [--interval SECONDS]`: the background jobs (see operations.worker)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import Error as DatabaseError
from django.db import close_old_connections

from tuktuk.backoffice.worker import WorkerState, worker_tick
from tuktuk.core import jsonutil

logger = logging.getLogger(__name__)


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
            if options["once"]:
                self.stdout.write(jsonutil.dumps(worker_tick(state)))
                return
            # As Django does around each request: drop a connection that failed or is too old,
            # so a database failover or restart costs one pass, not the worker.
            close_old_connections()
            try:
                worker_tick(state)
            except DatabaseError:
                logger.exception("worker pass failed on a database error; the next pass retries")
            # Waiting on the event (not sleeping) lets SIGTERM stop the worker at once.
            if stop.wait(options["interval"]):
                return
