"""`tuktuk uncaptured list [--json]` and
`tuktuk uncaptured assign TRANSID DRIVER (--send-share|--deposit-share) --reason TEXT`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import ASSIGN_UNCAPTURED
from tuktuk.core import jsonutil
from tuktuk.ledger.uncaptured import DEPOSIT_SHARE, SEND_SHARE, uncaptured_assign, uncaptured_list


class Command(OperatorCommand):
    help = "Payments whose account number matched no driver: list them, assign them."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list")
        listing.add_argument("--json", action="store_true")
        assign = sub.add_parser("assign")
        assign.add_argument("trans_id")
        assign.add_argument("driver")
        mode = assign.add_mutually_exclusive_group(required=True)
        mode.add_argument("--send-share", action="store_true", help="split and pay out")
        mode.add_argument(
            "--deposit-share", action="store_true", help="all toward the target, no payout"
        )
        assign.add_argument("--reason", required=True)
        self.add_user_argument(assign)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            rows = [
                {
                    "trans_id": t.trans_id,
                    "amount": t.amount,
                    "payer": t.payer_msisdn,
                    "payer_name": t.payer_name,
                    "account_typed": t.account_reference,
                    "mpesa_time": t.mpesa_time,
                    "received_at": t.received_at,
                }
                for t in uncaptured_list()
            ]
            if options["json"]:
                self.stdout.write(jsonutil.dumps(rows, indent=2))
            else:
                for row in rows:
                    self.stdout.write(
                        f"{row['trans_id']:12} {row['amount']:>9} {row['payer']:14} "
                        f"{row['account_typed']!r:14} {row['received_at']:%Y-%m-%d %H:%M}"
                    )
                self.stdout.write(f"{len(rows)} uncaptured payment(s).")
            return
        actor = self.acting(options, ASSIGN_UNCAPTURED)
        payment = uncaptured_assign(
            trans_id=options["trans_id"],
            driver_id=options["driver"],
            mode=SEND_SHARE if options["send_share"] else DEPOSIT_SHARE,
            reason=options["reason"],
            actor=actor,
        )
        assert payment.driver is not None  # an assigned payment has its driver
        self.stdout.write(
            f"{payment.trans_id} assigned to {payment.driver.driver_id}: share "
            f"{payment.driver_share}, contribution {payment.target_contribution}."
        )
