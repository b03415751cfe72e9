"""`tuktuk statement DRIVER [--from D] [--to D] [--csv FILE | --json]`.

Prints a readable statement, its JSON, or writes the CSV (`--csv -` writes it to stdout).
Definitions: see tuktuk.ledger.statement.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.core import jsonutil
from tuktuk.ledger.statement import Statement, driver_statement
from tuktuk.ledger.statement_csv import statement_csv


class Command(OperatorCommand):
    help = "A driver's statement for a range of business days (opening, movements, closing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("driver", help="driver id, e.g. DRV-112001")
        parser.add_argument(
            "--from", dest="date_from", help="first business day YYYY-MM-DD (default: --to)"
        )
        parser.add_argument(
            "--to", dest="date_to", help="last business day YYYY-MM-DD (default: the open day)"
        )
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--csv", metavar="FILE", help="write the CSV to FILE ('-': stdout)")
        output.add_argument("--json", action="store_true", help="print the JSON answer")

    def handle(self, *args: Any, **options: Any) -> None:
        statement = driver_statement(
            driver_id=options["driver"],
            date_from=options["date_from"],
            date_to=options["date_to"],
        )
        if options["csv"]:
            self._write_csv(statement, options["csv"])
        elif options["json"]:
            self.stdout.write(jsonutil.dumps(statement.as_dict(), indent=2))
        else:
            self._print(statement)

    def _write_csv(self, statement: Statement, target: str) -> None:
        text = statement_csv(statement)
        if target == "-":
            self.stdout.write(text, ending="")  # the CSV ends with its own CRLF
            return
        try:
            # newline="": the CRLFs the csv module wrote are kept as they are on every OS.
            with open(target, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from exc
        self.stdout.write(f"Wrote the statement CSV to {target}")

    def _print(self, statement: Statement) -> None:
        totals = statement.totals
        write = self.stdout.write
        write(
            f"Statement {statement.driver_id} {statement.name}, business days "
            f"{statement.date_from} to {statement.date_to} (open day {statement.open_day})"
        )
        write(
            f"{'day':10}  {'state':12} {'opening':>11} {'contrib.':>11} {'corrections':>11} "
            f"{'closing':>11} {'received':>11}  recorded"
        )
        for day in statement.days:
            if day.recorded_closing_balance is not None:
                met = "met" if day.target_met else "missed"
                recorded = (
                    f"closed at {day.recorded_closing_balance}, target {day.target} {met}, "
                    f"carried over {day.carried_over}"
                )
            elif day.cached_balance is not None:
                recorded = f"cached balance {day.cached_balance}"
            else:
                recorded = ""
            write(
                f"{day.business_day!s:10}  {day.state:12} {day.opening:>11} "
                f"{day.contributions:>11} {day.corrections:>11} {day.closing:>11} "
                f"{day.amount_received:>11}  {recorded}"
            )
        write(
            f"Opening balance {totals.opening_balance} + contributions {totals.contributions} "
            f"+ corrections {totals.corrections} + carried over at day closes "
            f"{totals.carry_over_adjustments} = closing balance {totals.closing_balance}"
        )
        write(
            f"Received {totals.amount_received} in {totals.transactions_count} transaction(s): "
            f"driver share {totals.driver_share}, target contribution "
            f"{totals.target_contribution}, adjustments {totals.adjustments}"
        )
        if statement.transactions:
            write("Transactions:")
        for tx in statement.transactions:
            payout = f", payout {tx.payout_amount} {tx.payout_state}" if tx.payout_state else ""
            if tx.payout_receipt:
                payout += f" {tx.payout_receipt}"
            write(
                f"  {tx.received_at:%Y-%m-%d %H:%M:%S} {tx.trans_id} {tx.transaction_type} "
                f"{tx.amount} (share {tx.driver_share}, contribution {tx.target_contribution}) "
                f"payer {tx.payer_msisdn or '-'}{payout}"
            )
        if statement.entries:
            write("Ledger entries:")
        for entry in statement.entries:
            ref = f" {entry.trans_id}" if entry.trans_id else ""
            note = f" ({entry.note})" if entry.note else ""
            write(f"  {entry.business_day} {entry.kind} {entry.amount}{ref}{note}")
        for problem in statement.problems:
            write(f"problem: {problem}")
