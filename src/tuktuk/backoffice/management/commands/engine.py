"""`tuktuk engine [--until-empty] [--batch-size N]`: the posting engine (mpesa.posting_engine)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tuktuk.core import jsonutil
from tuktuk.mpesa.posting_engine import engine_drain, engine_run


class Command(BaseCommand):
    help = (
        "Run the posting engine: credit stored C2B confirmations in batches, exactly once. "
        "Several may run at once. `tuktuk serve` starts one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--until-empty", action="store_true", help="post what is stored, then exit"
        )
        parser.add_argument(
            "--batch-size", type=int, default=None, help="default: TUKTUK_ENGINE_BATCH_SIZE"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit = options["batch_size"]
        if options["until_empty"]:
            report = engine_drain(limit=limit)
            self.stdout.write(jsonutil.dumps(report.__dict__))
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        engine_run(stop=stop, limit=limit)
