"""`tuktuk reconcile DRIVER|--all [--date D] [--fix --reason TEXT] [--json]`.

Exit code 1 when discrepancies remain, so a cron job or script can tell.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from tuktuk.backoffice.legacy import (
    fix_driver_balance,
    reconcile_all_drivers_balances,
    reconcile_driver_balance,
)
from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import FIX_BALANCE
from tuktuk.core import jsonutil
from tuktuk.core.money import format_ksh


class Command(OperatorCommand):
    help = "Check driver balances against the ledger, and optionally fix them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("driver", nargs="?", help="driver id, e.g. DRV-112001")
        parser.add_argument("--all", action="store_true", help="every active driver")
        parser.add_argument("--date", help="business day YYYY-MM-DD (default: the open day)")
        parser.add_argument("--fix", action="store_true", help="fix what is found")
        parser.add_argument("--reason", default="", help="why (required with --fix)")
        parser.add_argument("--json", action="store_true", help="print the JSON answer")
        self.add_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if bool(options["driver"]) == bool(options["all"]):
            raise CommandError("give a driver id or --all (not both)")
        result, remaining = self._run(options)
        if options["json"]:
            self.stdout.write(jsonutil.dumps(result, indent=2))
        else:
            self._print(result)
        if remaining:
            raise SystemExit(1)

    def _run(self, options: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        date, fix = options["date"], options["fix"]
        if fix and not options["reason"].strip() and not options["all"]:
            raise CommandError("--fix needs --reason TEXT (it goes into the audit trail)")
        actor = self.acting(options, FIX_BALANCE) if fix else ""
        if options["all"]:
            result = reconcile_all_drivers_balances(
                date=date,
                auto_fix=fix,
                reason=options["reason"] or "mass reconciliation (CLI)",
                actor=actor,
            )
            return result, any(not r["fixed"] for r in result["results"])
        if fix:
            result = fix_driver_balance(
                options["driver"],
                date=date,
                auto_fix=True,
                reason=options["reason"],
                actor=actor,
            )
            return result, False
        result = reconcile_driver_balance(options["driver"], date=date)
        return result, result["needs_fix"]

    def _print(self, result: dict[str, Any]) -> None:
        if "results" in result:
            self.stdout.write(
                f"{result['drivers_checked']} drivers checked, "
                f"{result['drivers_with_discrepancies']} with discrepancies, "
                f"{format_ksh(result['total_discrepancy_amount'])} KSH in total"
            )
            for row in result["results"]:
                flags = " [needs review]" if row["needs_review"] else ""
                flags += " [fixed]" if row["fixed"] else ""
                self.stdout.write(
                    f"  {row['driver_name']} {row['driver']}: {row['message']}{flags}"
                )
            return
        self.stdout.write(f"{result['driver_name']} {result['driver']}: {result['message']}")
        for key in ("old_balance", "calculated_balance", "new_balance", "transactions_count"):
            if key in result:
                self.stdout.write(f"  {key}: {result[key]}")
        for kind in ("problem", "information"):
            for finding in result.get("problems" if kind == "problem" else "information", []):
                self.stdout.write(
                    f"  {kind}: {finding['type']} {finding['trans_id']}: {finding['detail']}"
                )
