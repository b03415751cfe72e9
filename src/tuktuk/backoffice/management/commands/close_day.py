"""`tuktuk close-day [--date D]`: close every driver's business days up to D (default: all due)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tuktuk.ledger.day_close import day_close_run


class Command(BaseCommand):
    help = "Close business days whose close time has passed (each driver, each day, once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="close up to and including this day (YYYY-MM-DD)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            through = dt.date.fromisoformat(options["date"]) if options["date"] else None
            closed = day_close_run(through_day=through)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Closed {closed} driver-day(s).")
