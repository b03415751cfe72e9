"""`tuktuk substitute …`: substitute drivers and their covers (tuktuk.ledger.duty).

tuktuk substitute add --name NAME --mpesa-number 07XXXXXXXX [--target KSH] [--percentage P]
tuktuk substitute cover SUBSTITUTE VEHICLE --from DAY [--to DAY] [--reason TEXT]
tuktuk substitute list [--json]

A substitute's fares always split by percentage and their days carry no debt; a cover runs from
the opening of its first business day to the close of its last. Adding takes --user with
fleet.add_driver, a cover with fleet.change_vehicle (a fleet manager holds both).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice import selectors
from tuktuk.backoffice.duty_edges import (
    assignment_line,
    daily_target_arg,
    fare_percentage_arg,
    substitute_name_arg,
)
from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import ADD_SUBSTITUTE, MANAGE_VEHICLES
from tuktuk.core import jsonutil
from tuktuk.ledger.duty import substitute_assign_by, substitute_create

LIST_LIMIT = 1_000_000  # the CLI lists every substitute


class Command(OperatorCommand):
    help = "Substitute drivers: add one, give one a vehicle for some days, list them."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="a new substitute driver (their own id and number)")
        add.add_argument("--name", required=True)
        add.add_argument("--mpesa-number", required=True, help="07XXXXXXXX or 2547XXXXXXXX")
        add.add_argument("--target", metavar="KSH", help="own daily target (default: the fleet's)")
        add.add_argument(
            "--percentage", metavar="P", help="own fare percentage, 0-100 (default: the fleet's)"
        )
        self.add_user_argument(add)
        cover = sub.add_parser("cover", help="the substitute drives a vehicle for some days")
        cover.add_argument("substitute", help="the substitute's driver id")
        cover.add_argument("vehicle")
        cover.add_argument("--from", dest="date_from", required=True, metavar="YYYY-MM-DD")
        cover.add_argument(
            "--to", dest="date_to", metavar="YYYY-MM-DD", help="the last day (default: --from)"
        )
        cover.add_argument("--reason", default="", help="why (kept with the cover)")
        self.add_user_argument(cover)
        listing = sub.add_parser("list", help="substitutes and their covers not yet over")
        listing.add_argument("--json", action="store_true", help="print the JSON answer")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "add":
            actor = self.acting(options, ADD_SUBSTITUTE)
            substitute = substitute_create(
                name=substitute_name_arg(options["name"]),
                mpesa_number=options["mpesa_number"],
                actor=actor,
                daily_target=daily_target_arg(options["target"]),
                fare_percentage=fare_percentage_arg(options["percentage"]),
            )
            self.stdout.write(
                f"Substitute {substitute.driver_id} {substitute.name} ({substitute.mpesa_number}) "
                f"added; cover a vehicle with 'tuktuk substitute cover {substitute.driver_id} "
                "VEHICLE --from DAY'."
            )
        elif action == "cover":
            actor = self.acting(options, MANAGE_VEHICLES)
            cover = substitute_assign_by(
                vehicle_id=options["vehicle"],
                substitute_id=options["substitute"],
                date_from=options["date_from"],
                date_to=options["date_to"],
                actor=actor,
                reason=options["reason"],
            )
            self.stdout.write(f"Cover: {assignment_line(selectors.assignment_dict(cover))}")
        else:
            self._list(as_json=options["json"])

    def _list(self, *, as_json: bool) -> None:
        page = selectors.substitute_list(limit=LIST_LIMIT, offset=0)
        if as_json:
            self.stdout.write(jsonutil.dumps(page.items, indent=2))
            return
        for row in page.items:
            target = row["daily_target"] or "fleet's"
            percentage = row["fare_percentage"] or "fleet's"
            self.stdout.write(
                f"{row['driver_id']} {row['name']} ({row['mpesa_number']}, {row['status']}): "
                f"target {target}, percentage {percentage}"
            )
            for cover in row["covers"]:
                self.stdout.write(f"    {assignment_line(cover)}")
        self.stdout.write(f"{page.count} substitute(s).")
