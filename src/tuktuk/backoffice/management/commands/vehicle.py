"""`tuktuk vehicle …`: vehicles, their status and who drives them now (tuktuk.ledger.duty).

tuktuk vehicle list [--json]                       (status now, driver on duty now)
tuktuk vehicle status VEHICLE [--json]             (the status now and the operator's changes)
tuktuk vehicle status VEHICLE STATUS --reason TEXT (Available, Charging, Maintenance, Offline)

Changing a status takes --user (a fleet manager: fleet.change_vehicle).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from tuktuk.backoffice import selectors
from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import MANAGE_VEHICLES
from tuktuk.core import jsonutil
from tuktuk.fleet.models import OPERATOR_STATUSES
from tuktuk.ledger.duty import vehicle_status_change

LIST_LIMIT = 1_000_000  # the CLI lists every vehicle


class Command(OperatorCommand):
    help = "Vehicles: the list with who drives each now, a vehicle's status and its changes."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="every vehicle, its status and driver on duty now")
        listing.add_argument("--json", action="store_true", help="print the JSON answer")
        status = sub.add_parser(
            "status", help="show a vehicle's status and its history, or set a new status"
        )
        status.add_argument("vehicle")
        status.add_argument(
            "status",
            nargs="?",
            metavar="STATUS",
            help=f"the new status: {', '.join(OPERATOR_STATUSES)} (any case); none: show",
        )
        status.add_argument("--reason", default="", help="why (required with STATUS)")
        status.add_argument("--json", action="store_true", help="print the JSON answer")
        self.add_user_argument(status)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            self._list(as_json=options["json"])
            return
        if options["status"] is not None:
            actor = self.acting(options, MANAGE_VEHICLES)
            vehicle = vehicle_status_change(
                vehicle_id=options["vehicle"],
                status=options["status"],
                actor=actor,
                reason=options["reason"],
            )
            now = selectors.vehicle_detail(vehicle_id=vehicle.vehicle_id)
            self.stdout.write(
                f"{vehicle.vehicle_id} is now {vehicle.status} (status now: {now['status_now']})."
            )
            return
        self._show(options["vehicle"], as_json=options["json"])

    def _list(self, *, as_json: bool) -> None:
        page = selectors.vehicle_list(limit=LIST_LIMIT, offset=0)
        if as_json:
            self.stdout.write(jsonutil.dumps(page.items, indent=2))
            return
        write = self.stdout.write
        write(f"{'vehicle':10} {'account':10} {'status now':12} {'on duty now':11}  name")
        for row in page.items:
            inactive = "" if row["is_active"] else " (inactive)"
            on_duty = row["driver_id"] or "-"
            name = (row["driver_name"] or "") + (" (substitute)" if row["substitute"] else "")
            write(
                f"{row['vehicle_id']:10} {row['mpesa_account']:10} {row['status_now']:12} "
                f"{on_duty:11}  {name}{inactive}".rstrip()
            )
        write(f"{page.count} vehicle(s).")

    def _show(self, vehicle_id: str, *, as_json: bool) -> None:
        vehicle = selectors.vehicle_detail(vehicle_id=vehicle_id)
        history = selectors.vehicle_status_history(vehicle_id=vehicle_id)
        if as_json:
            self.stdout.write(jsonutil.dumps({**vehicle, "history": history}, indent=2))
            return
        write = self.stdout.write
        on_duty = (
            f"{vehicle['driver_id']} {vehicle['driver_name']}"
            + (" (substitute)" if vehicle["substitute"] else "")
            if vehicle["driver_id"]
            else "nobody"
        )
        write(
            f"{vehicle['vehicle_id']} ({vehicle['mpesa_account']}): {vehicle['status_now']} now "
            f"(set by an operator: {vehicle['status']}); on duty: {on_duty}"
        )
        if not history:
            write("No status changes.")
        for change in history:
            write(
                f"{timezone.localtime(change['changed_at']):%Y-%m-%d %H:%M}  "
                f"{change['old_status']} → {change['new_status']}  by {change['changed_by']}: "
                f"{change['reason']}"
            )
