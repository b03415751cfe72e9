"""`tuktuk driver …`: a driver leaving the fleet, and the legacy "Reset Consecutive Misses"
(tuktuk.ledger.exits).

tuktuk driver terminate DRIVER --reason TEXT     (proposes the deposit refund)
tuktuk driver archive DRIVER                     (a terminated driver, off the everyday lists)
tuktuk driver restore DRIVER --reason TEXT       (back with the balances they left with)
tuktuk driver reset-misses DRIVER --reason TEXT

Each takes --user: terminate, archive and restore need fleet.change_driver and
ledger.manage_deposits; reset-misses needs fleet.change_driver.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import MANAGE_EXITS, RESET_MISSES
from tuktuk.ledger.exits import (
    driver_archive,
    driver_misses_reset,
    driver_restore,
    driver_terminate,
)


class Command(OperatorCommand):
    help = "Terminate, archive or restore a driver; reset a driver's consecutive misses."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        terminate = sub.add_parser("terminate", help="end the engagement, propose the refund")
        terminate.add_argument("driver")
        terminate.add_argument("--reason", required=True)
        self.add_user_argument(terminate)
        archive = sub.add_parser("archive", help="hide a terminated driver from everyday lists")
        archive.add_argument("driver")
        self.add_user_argument(archive)
        restore = sub.add_parser("restore", help="bring a terminated or archived driver back")
        restore.add_argument("driver")
        restore.add_argument("--reason", required=True)
        self.add_user_argument(restore)
        reset = sub.add_parser("reset-misses", help="zero the misses, lift the review flag")
        reset.add_argument("driver")
        reset.add_argument("--reason", required=True)
        self.add_user_argument(reset)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "reset-misses":
            actor = self.acting(options, RESET_MISSES)
            driver = driver_misses_reset(
                driver_id=options["driver"], reason=options["reason"], actor=actor
            )
            self.stdout.write(
                f"{driver.driver_id}: consecutive misses reset to {driver.consecutive_misses}, "
                f"flagged for review: {'yes' if driver.flagged_for_review else 'no'}."
            )
            return
        actor = self.acting(options, *MANAGE_EXITS)
        if action == "terminate":
            refund = driver_terminate(
                driver_id=options["driver"], reason=options["reason"], actor=actor
            )
            self.stdout.write(
                f"{refund.driver.driver_id} terminated. Refund {refund.pk} proposed: deposit "
                f"{refund.deposit_balance} − target debt {refund.target_debt} − adjustments "
                f"{refund.adjustments_debt} = {refund.amount} KSH (approve with "
                f"'tuktuk refund approve {refund.pk}')."
            )
        elif action == "archive":
            driver = driver_archive(driver_id=options["driver"], actor=actor)
            self.stdout.write(f"{driver.driver_id} is {driver.status}.")
        else:
            driver = driver_restore(
                driver_id=options["driver"], reason=options["reason"], actor=actor
            )
            self.stdout.write(f"{driver.driver_id} is {driver.status} again.")
