"""`tuktuk unassign VEHICLE [--at WHEN] [--reason TEXT]`: take a vehicle from its driver (the
same as `tuktuk assign VEHICLE --none`). Takes --user (a fleet manager: fleet.change_vehicle).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice.management.commands.assign import add_handover_arguments, handover
from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import MANAGE_VEHICLES


class Command(OperatorCommand):
    help = "Take a vehicle from its driver: nobody drives it from then on."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("vehicle")
        add_handover_arguments(parser)
        self.add_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        actor = self.acting(options, MANAGE_VEHICLES)
        handover(self, options, driver_id=None, actor=actor)
