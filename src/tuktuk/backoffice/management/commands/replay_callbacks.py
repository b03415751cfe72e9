"""`tuktuk replay-callbacks`: re-process stored C2B confirmations that failed or stalled."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tuktuk.mpesa.callbacks import callbacks_replay


class Command(BaseCommand):
    help = "Re-process failed C2B confirmations (and received ones older than --stale-seconds)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stale-seconds", type=int, default=120)

    def handle(self, *args: Any, **options: Any) -> None:
        counts = callbacks_replay(stale_after=dt.timedelta(seconds=options["stale_seconds"]))
        total = sum(counts.values())
        details = (
            ", ".join(f"{state}: {n}" for state, n in sorted(counts.items())) or "nothing to do"
        )
        self.stdout.write(f"Replayed {total} callback(s): {details}")
