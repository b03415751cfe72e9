"""`tuktuk adjustment add DRIVER AMOUNT --reason TEXT`: record a debt a driver owes."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import ADJUST
from tuktuk.ledger.adjustments import adjustment_add
from tuktuk.ledger.models import Adjustment


class Command(OperatorCommand):
    help = "Driver debts (adjustments): add, list."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add")
        add.add_argument("driver")
        add.add_argument("amount")
        add.add_argument("--reason", required=True)
        self.add_user_argument(add)
        listing = sub.add_parser("list")
        listing.add_argument("--driver")
        listing.add_argument("--all", action="store_true", help="settled ones too")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "add":
            actor = self.acting(options, ADJUST)
            adjustment = adjustment_add(
                driver_id=options["driver"],
                amount=options["amount"],
                reason=options["reason"],
                actor=actor,
            )
            self.stdout.write(
                f"Adjustment {adjustment.pk}: {adjustment.driver.driver_id} owes "
                f"{adjustment.amount} KSH ({adjustment.transaction.trans_id})."
            )
            return
        rows = Adjustment.objects.select_related("driver").order_by("created_at")
        if not options["all"]:
            rows = rows.filter(state="open")
        if options["driver"]:
            rows = rows.filter(driver__driver_id=options["driver"].upper())
        for a in rows:
            self.stdout.write(
                f"{a.pk:>5} {a.driver.driver_id} {a.amount:>9} repaid {a.repaid:>9} {a.state:8} "
                f"{a.description[:60]}"
            )
