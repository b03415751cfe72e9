"""`tuktuk close-day [--date D]`: close every driver's business days up to D (default: all due)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.operator_services import days_close_by
from tuktuk.backoffice.roles import CLOSE_DAYS
from tuktuk.core.dates import day_parse


class Command(OperatorCommand):
    help = "Close business days whose close time has passed (each driver, each day, once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="close up to and including this day (YYYY-MM-DD)")
        self.add_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        actor = self.acting(options, CLOSE_DAYS)
        closed = days_close_by(actor=actor, through_day=day_parse(options["date"]))
        self.stdout.write(f"Closed {closed} driver-day(s).")
