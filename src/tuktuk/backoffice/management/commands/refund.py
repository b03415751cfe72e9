"""`tuktuk refund …`: the deposit refunds of terminated drivers (tuktuk.ledger.exits).

tuktuk refund list [--state proposed|approved|rejected|all] [--json]
tuktuk refund approve ID [ID ...]      (each on its own; one refused does not stop the others)
tuktuk refund reject ID --reason TEXT

Approving and rejecting take --user (a fleet manager: ledger.manage_deposits). An approval
computes the figures again, settles the debts from the deposit and queues the rest as an M-Pesa
B2C payout.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from tuktuk.backoffice import selectors
from tuktuk.backoffice.errors import error_shape
from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import MANAGE_DEPOSITS
from tuktuk.core import jsonutil
from tuktuk.core.errors import Conflict
from tuktuk.ledger.exits import refund_reject, refunds_approve
from tuktuk.ledger.models import Decision

ALL_STATES = "all"
LIST_LIMIT = 1000


class Command(OperatorCommand):
    help = "Deposit refunds of terminated drivers: list, approve (one or many), reject."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list")
        listing.add_argument(
            "--state", choices=[*Decision.values, ALL_STATES], default=Decision.PROPOSED
        )
        listing.add_argument("--json", action="store_true", help="print the JSON answer")
        approve = sub.add_parser("approve", help="approve and pay one or more refunds")
        approve.add_argument("refund_ids", type=int, nargs="+", metavar="ID")
        self.add_user_argument(approve)
        reject = sub.add_parser("reject")
        reject.add_argument("refund_id", type=int)
        reject.add_argument("--reason", required=True)
        self.add_user_argument(reject)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            self._list(options["state"], as_json=options["json"])
            return
        actor = self.acting(options, MANAGE_DEPOSITS)
        if action == "reject":
            refund = refund_reject(
                refund_id=options["refund_id"], reason=options["reason"], actor=actor
            )
            self.stdout.write(f"Refund {refund.pk} to {refund.driver.driver_id} rejected.")
            return
        decisions = refunds_approve(refund_ids=options["refund_ids"], actor=actor)
        for decision in decisions:
            if decision.refund is None:
                self.stdout.write(f"Refund {decision.refund_id}: not approved: {decision.error}")
            else:
                self.stdout.write(
                    f"Refund {decision.refund_id} to {decision.refund.driver.driver_id} "
                    f"approved: {selectors.refund_paid(decision.refund)}."
                )
        refused = [d for d in decisions if d.refund is None]
        if refused:
            # One kind of refusal exits as that kind does (3: no such refund, 5: already
            # decided); a mix says "not done, look again" (Conflict).
            message = f"{len(refused)} of {len(decisions)} refund(s) not approved"
            errors = {type(d.refused): d.refused for d in refused if d.refused is not None}
            worst = next(iter(errors.values())) if len(errors) == 1 else Conflict(message)
            raise CommandError(message, returncode=error_shape(worst).cli_exit)

    def _list(self, state: str, *, as_json: bool) -> None:
        page = selectors.refund_list(
            state=None if state == ALL_STATES else state, limit=LIST_LIMIT, offset=0
        )
        if as_json:
            self.stdout.write(jsonutil.dumps(page.items, indent=2))
            return
        for r in page.items:
            payout = f", payout {r['payout_state']}" if r["payout_state"] else ""
            self.stdout.write(
                f"{r['id']:>6} {r['driver_id']} {r['state']:9} deposit {r['deposit_balance']:>9} "
                f"− target debt {r['target_debt']:>9} − adjustments {r['adjustments_debt']:>9} "
                f"= {r['amount']:>9}{payout}  {r['reason'][:60]}"
            )
        self.stdout.write(f"{page.count} refund(s) ({state}).")
