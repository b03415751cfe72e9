"""`tuktuk portal pin|unlock|problems|resolve`: drivers' portal logins and their problem reports.

tuktuk portal pin DRIVER (--pin 4-6DIGITS | --send-code) --user U
tuktuk portal unlock DRIVER --user U
tuktuk portal problems [--all] [--json]
tuktuk portal resolve ID --answer TEXT --user U
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.portal.models import ProblemReport, ProblemState
from tuktuk.backoffice.portal.selectors import problem_reports_summary
from tuktuk.backoffice.portal.services import (
    driver_pin_set,
    driver_unlock,
    login_code_send,
    problem_report_resolve,
)
from tuktuk.backoffice.roles import MANAGE_DRIVER_ACCOUNTS, RESOLVE_PROBLEMS
from tuktuk.core import jsonutil
from tuktuk.core.errors import Conflict
from tuktuk.fleet.selectors import driver_get


class Command(OperatorCommand):
    help = (
        "Set a driver's portal PIN or send a login code, unlock a driver, list and resolve "
        "problem reports."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        pin = sub.add_parser(
            "pin", help="set a PIN (changed by the driver at login) or send a code"
        )
        pin.add_argument("driver")
        how = pin.add_mutually_exclusive_group(required=True)
        how.add_argument("--pin", help="4 to 6 digits")
        how.add_argument("--send-code", action="store_true", help="a one-time code by SMS")
        self.add_user_argument(pin)
        unlock = sub.add_parser("unlock", help="lift the lockout after wrong PINs")
        unlock.add_argument("driver")
        self.add_user_argument(unlock)
        problems = sub.add_parser("problems", help="drivers' problem reports")
        problems.add_argument("--all", action="store_true", help="resolved ones too")
        problems.add_argument("--json", action="store_true")
        resolve = sub.add_parser("resolve", help="answer and close a problem report")
        resolve.add_argument("report_id", type=int)
        resolve.add_argument("--answer", required=True)
        self.add_user_argument(resolve)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "problems":
            self._problems(options)
        elif action == "pin":
            actor = self.acting(options, MANAGE_DRIVER_ACCOUNTS)
            if options["pin"]:
                account = driver_pin_set(
                    driver_id=options["driver"], pin=options["pin"], actor=actor
                )
                self.stdout.write(
                    f"PIN set for {account.driver.driver_id}; they choose their own at login."
                )
            else:
                driver = driver_get(ref=options["driver"])
                if login_code_send(driver=driver, requested_by=actor) is None:
                    raise Conflict(
                        f"{driver.driver_id} got a code less than a minute ago, or five today"
                    )
                self.stdout.write(f"Login code for {driver.driver_id} queued (works 10 minutes).")
        elif action == "unlock":
            actor = self.acting(options, MANAGE_DRIVER_ACCOUNTS)
            cleared = driver_unlock(driver_id=options["driver"], actor=actor)
            self.stdout.write(f"Unlocked ({cleared} failure record(s) cleared).")
        elif action == "resolve":
            actor = self.acting(options, RESOLVE_PROBLEMS)
            report = problem_report_resolve(
                report_id=options["report_id"], actor=actor, resolution=options["answer"]
            )
            self.stdout.write(f"Problem report {report.pk} resolved.")

    def _problems(self, options: dict[str, Any]) -> None:
        if options["json"]:
            summary = problem_reports_summary(limit=200)
            self.stdout.write(
                jsonutil.dumps(
                    {
                        "open": summary.open,
                        "opened_today": summary.opened_today,
                        "latest": [dict(row.__dict__) for row in summary.latest],
                    }
                )
            )
            return
        rows = ProblemReport.objects.select_related("driver").order_by("-created_at")
        if not options["all"]:
            rows = rows.filter(state=ProblemState.OPEN)
        self.stdout.write(f"{rows.count()} problem report(s)")
        for report in rows[:200]:
            self.stdout.write(
                f"{report.pk:>5} {report.created_at:%Y-%m-%d %H:%M} {report.driver.driver_id} "
                f"{report.state:<8} {report.trans_id or '-'} {report.note[:80]}"
            )
