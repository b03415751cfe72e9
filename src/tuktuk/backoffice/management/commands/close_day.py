"""`tuktuk close-day [--date D]`: close every driver's business days up to D (default: all due)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.core.dates import day_parse
from tuktuk.ledger.day_close import day_close_run


class Command(OperatorCommand):
    help = "Close business days whose close time has passed (each driver, each day, once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="close up to and including this day (YYYY-MM-DD)")

    def handle(self, *args: Any, **options: Any) -> None:
        closed = day_close_run(through_day=day_parse(options["date"]))
        self.stdout.write(f"Closed {closed} driver-day(s).")
