"""`tuktuk assignments [VEHICLE|DRIVER] [--json]`: who drove which vehicle from when to when,
oldest first (all vehicles, one vehicle, or one driver: DRV-112001)."""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice import selectors
from tuktuk.backoffice.duty_edges import assignment_line
from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.core import jsonutil

LIST_LIMIT = 1_000_000  # the CLI prints the whole history
_DRIVER_ID = re.compile(r"\s*[Dd][Rr][Vv]-[0-9]{6}\s*")


class Command(OperatorCommand):
    help = "The assignment history: who drove which vehicle from when to when."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "ref", nargs="?", metavar="VEHICLE|DRIVER", help="one vehicle, or one driver's id"
        )
        parser.add_argument("--json", action="store_true", help="print the JSON answer")

    def handle(self, *args: Any, **options: Any) -> None:
        ref = options["ref"]
        by_driver = ref is not None and _DRIVER_ID.fullmatch(ref) is not None
        page = selectors.assignment_list(
            limit=LIST_LIMIT,
            offset=0,
            driver_id=ref if by_driver else None,
            vehicle_id=ref if ref is not None and not by_driver else None,
        )
        if options["json"]:
            self.stdout.write(jsonutil.dumps(page.items, indent=2))
            return
        for row in page.items:
            self.stdout.write(assignment_line(row))
        self.stdout.write(f"{page.count} assignment(s).")
