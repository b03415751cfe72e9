"""`tuktuk payouts list|release|retry|resolve`: operator tools for B2C payouts.

tuktuk payouts list [--state unknown]
tuktuk payouts release (--driver DRV-112001 | --all)
tuktuk payouts retry ID --reason TEXT            (failed payouts only)
tuktuk payouts resolve ID (--completed RECEIPT | --failed) --reason TEXT   (unknown only)
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import MANAGE_PAYOUTS
from tuktuk.fleet.selectors import driver_get
from tuktuk.payouts.models import Payout, PayoutState
from tuktuk.payouts.services import payout_resolve, payout_retry, payouts_release


class Command(OperatorCommand):
    help = "List, release, retry and resolve driver payouts."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list")
        listing.add_argument("--state", choices=PayoutState.values)
        listing.add_argument("--limit", type=int, default=50)
        release = sub.add_parser("release")
        target = release.add_mutually_exclusive_group(required=True)
        target.add_argument("--driver")
        target.add_argument("--all", action="store_true")
        self.add_user_argument(release)
        retry = sub.add_parser("retry")
        retry.add_argument("payout_id", type=int)
        retry.add_argument("--reason", required=True)
        self.add_user_argument(retry)
        resolve = sub.add_parser("resolve")
        resolve.add_argument("payout_id", type=int)
        outcome = resolve.add_mutually_exclusive_group(required=True)
        outcome.add_argument("--completed", metavar="RECEIPT")
        outcome.add_argument("--failed", action="store_true")
        resolve.add_argument("--reason", required=True)
        self.add_user_argument(resolve)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        actor = "" if action == "list" else self.acting(options, MANAGE_PAYOUTS)
        if action == "list":
            self._list(options["state"], options["limit"])
        elif action == "release":
            driver = None
            if options["driver"]:
                driver = driver_get(ref=options["driver"])
            count = payouts_release(actor=actor, driver=driver, everything=options["all"])
            self.stdout.write(f"Released {count} held payout(s).")
        elif action == "retry":
            payout = payout_retry(
                payout_id=options["payout_id"], actor=actor, reason=options["reason"]
            )
            self.stdout.write(
                f"Payout {payout.pk} queued again as {payout.originator_conversation_id}."
            )
        else:
            payout = payout_resolve(
                payout_id=options["payout_id"],
                actor=actor,
                reason=options["reason"],
                completed=bool(options["completed"]),
                receipt=options["completed"] or "",
            )
            self.stdout.write(f"Payout {payout.pk} is now {payout.state}.")

    def _list(self, state: str | None, limit: int) -> None:
        payouts = Payout.objects.select_related("driver").order_by("-pk")
        if state:
            payouts = payouts.filter(state=state)
        for p in payouts[:limit]:
            self.stdout.write(
                f"{p.pk:>6} {p.state:9} {p.driver.driver_id} {p.amount:>9} {p.phone} "
                f"{p.originator_conversation_id} {p.receipt or ''} {p.result_desc[:60]}"
            )
