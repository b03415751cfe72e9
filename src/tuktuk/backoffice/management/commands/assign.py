"""`tuktuk assign …`: hand a vehicle over to a driver (tuktuk.ledger.duty.vehicle_assign_by).

tuktuk assign VEHICLE DRIVER [--at WHEN] [--reason TEXT]
tuktuk assign VEHICLE --none [--at WHEN] [--reason TEXT]   (take it from its driver)

WHEN is YYYYMMDDHHMMSS or ISO 8601 (Africa/Nairobi unless an offset is given; default now). An
assignment may start in the past only where no fare paid to the vehicle since is credited to
somebody else. Takes --user (a fleet manager: fleet.change_vehicle).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from tuktuk.backoffice.duty_edges import moment_arg, moment_text
from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import MANAGE_VEHICLES
from tuktuk.core.dates import MOMENT_FORMATS
from tuktuk.core.errors import InvalidInput
from tuktuk.ledger.duty import vehicle_assign_by


class Command(OperatorCommand):
    help = "Hand a vehicle over to a driver (or, with --none, take it from its driver)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("vehicle")
        parser.add_argument("driver", nargs="?", help="the driver taking the vehicle over")
        parser.add_argument("--none", action="store_true", help="nobody drives it from then on")
        add_handover_arguments(parser)
        self.add_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        actor = self.acting(options, MANAGE_VEHICLES)
        if bool(options["driver"]) == options["none"]:
            raise InvalidInput("name the DRIVER taking the vehicle over, or pass --none")
        handover(self, options, driver_id=options["driver"], actor=actor)


def add_handover_arguments(parser: CommandParser) -> None:
    parser.add_argument("--at", metavar="WHEN", help=f"from when (default now): {MOMENT_FORMATS}")
    parser.add_argument("--reason", default="", help="why (kept with the assignment)")


def handover(
    command: OperatorCommand, options: dict[str, Any], *, driver_id: str | None, actor: str
) -> None:
    """Shared with `tuktuk unassign`."""
    at = moment_arg(options["at"], name="--at") if options["at"] else timezone.now()
    made = vehicle_assign_by(
        vehicle_id=options["vehicle"],
        driver_id=driver_id,
        actor=actor,
        reason=options["reason"],
        at=at,
    )
    vehicle = options["vehicle"].strip()
    if made is None:
        command.stdout.write(
            f"{vehicle} unassigned from {moment_text(at, empty='now')}: nobody drives it."
        )
    else:
        command.stdout.write(
            f"{made.vehicle.vehicle_id} assigned to {made.driver.driver_id} {made.driver.name} "
            f"from {moment_text(made.starts_at, empty='now')}."
        )
