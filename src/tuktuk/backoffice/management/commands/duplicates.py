"""`tuktuk duplicates [--from D] [--to D] [--json]`: TransIDs delivered more than once.

Definitions: see tuktuk.mpesa.selectors (a TransID is listed in the range of its first delivery;
default: the last 7 business days).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.core import jsonutil
from tuktuk.mpesa.selectors import duplicates_report


class Command(OperatorCommand):
    help = "List M-Pesa TransIDs whose C2B confirmation was delivered more than once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from", dest="date_from", help="first business day YYYY-MM-DD (default: 7 days)"
        )
        parser.add_argument(
            "--to", dest="date_to", help="last business day YYYY-MM-DD (default: today's)"
        )
        parser.add_argument("--json", action="store_true", help="print the JSON answer")

    def handle(self, *args: Any, **options: Any) -> None:
        report = duplicates_report(date_from=options["date_from"], date_to=options["date_to"])
        if options["json"]:
            self.stdout.write(jsonutil.dumps(report.as_dict(), indent=2))
            return
        self.stdout.write(
            f"{len(report.duplicates)} TransID(s) delivered more than once "
            f"({report.deliveries} deliveries), first delivered in business days "
            f"{report.date_from} to {report.date_to}"
        )
        for duplicate in report.duplicates:
            driver = duplicate.driver_id or "driver unknown"
            amount = f" {duplicate.amount} KSH" if duplicate.amount is not None else ""
            warning = f"  ⚠️ credited {duplicate.processed} times" if duplicate.processed > 1 else ""
            self.stdout.write(
                f"{duplicate.trans_id}: {duplicate.count} deliveries, {driver}{amount}{warning}"
            )
            for delivery in duplicate.deliveries:
                error = f" ({delivery.error})" if delivery.error else ""
                self.stdout.write(
                    f"  {delivery.received_at:%Y-%m-%d %H:%M:%S} {delivery.state}{error}"
                )
