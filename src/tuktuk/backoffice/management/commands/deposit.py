"""`tuktuk deposit …`: drivers' security deposits (tuktuk.ledger.deposits).

tuktuk deposit add DRIVER AMOUNT --type initial|top-up|adjustment --reason TEXT
tuktuk deposit deduct DRIVER AMOUNT --type damage|adjustment --reason TEXT
tuktuk deposit show DRIVER [--json]
tuktuk deposit settings DRIVER [--required yes|no] [--initial AMOUNT] [--allow-deduction yes|no]
tuktuk deposit proposals [--state proposed|approved|rejected|all] [--json]
tuktuk deposit approve ID [--reason TEXT]
tuktuk deposit reject ID --reason TEXT
tuktuk deposit report [--csv [FILE] | --json]

Writes take --user (a fleet manager: ledger.manage_deposits).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from tuktuk.backoffice import selectors
from tuktuk.backoffice.deposit_report import DepositReport, deposit_report, deposit_report_csv
from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import MANAGE_DEPOSITS
from tuktuk.core import jsonutil
from tuktuk.ledger.deposits import (
    OPERATOR_CREDITS,
    OPERATOR_DEBITS,
    deduction_decide,
    deposit_add,
    deposit_deduct,
    deposit_settings_set,
)
from tuktuk.ledger.models import Decision, DepositEntry

WRITES = {"add", "deduct", "settings", "approve", "reject"}
YES_NO = {"yes": True, "no": False}
ALL_STATES = "all"
LIST_LIMIT = 1000


class Command(OperatorCommand):
    help = "Drivers' security deposits: add, deduct, show, settings, proposals, report."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="money into the deposit")
        add.add_argument("driver")
        add.add_argument("amount")
        add.add_argument("--type", dest="kind", choices=list(OPERATOR_CREDITS), default="top-up")
        add.add_argument("--reason", required=True)
        self.add_user_argument(add)
        deduct = sub.add_parser("deduct", help="money out of the deposit (never below zero)")
        deduct.add_argument("driver")
        deduct.add_argument("amount")
        deduct.add_argument("--type", dest="kind", choices=list(OPERATOR_DEBITS), default="damage")
        deduct.add_argument("--reason", required=True)
        self.add_user_argument(deduct)
        show = sub.add_parser("show", help="settings, balance and entries")
        show.add_argument("driver")
        show.add_argument("--json", action="store_true", help="print the JSON answer")
        settings = sub.add_parser("settings", help="change what the fleet asks of the driver")
        settings.add_argument("driver")
        settings.add_argument("--required", choices=list(YES_NO))
        settings.add_argument("--initial", metavar="AMOUNT", help="the deposit asked for (0: none)")
        settings.add_argument(
            "--allow-deduction",
            choices=list(YES_NO),
            help="a missed target may be paid from the deposit (once a fleet manager approves)",
        )
        self.add_user_argument(settings)
        proposals = sub.add_parser("proposals", help="target deductions waiting for a decision")
        proposals.add_argument(
            "--state", choices=[*Decision.values, ALL_STATES], default=Decision.PROPOSED
        )
        proposals.add_argument("--json", action="store_true", help="print the JSON answer")
        approve = sub.add_parser("approve", help="move a proposed deduction to the target")
        approve.add_argument("proposal_id", type=int)
        approve.add_argument("--reason", default="")
        self.add_user_argument(approve)
        reject = sub.add_parser("reject", help="refuse a proposed deduction")
        reject.add_argument("proposal_id", type=int)
        reject.add_argument("--reason", required=True)
        self.add_user_argument(reject)
        report = sub.add_parser("report", help="every driver's deposit and what made it")
        output = report.add_mutually_exclusive_group()
        output.add_argument(
            "--csv",
            nargs="?",
            const="-",
            metavar="FILE",
            help="write the CSV to FILE (no FILE or '-': stdout)",
        )
        output.add_argument("--json", action="store_true", help="print the JSON answer")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        actor = self.acting(options, MANAGE_DEPOSITS) if action in WRITES else ""
        if action in ("add", "deduct"):
            move = deposit_add if action == "add" else deposit_deduct
            entry = move(
                driver_id=options["driver"],
                amount=options["amount"],
                kind=options["kind"],
                reason=options["reason"],
                actor=actor,
            )
            self._print_entry(entry)
        elif action == "settings":
            self._settings(options, actor)
        elif action == "show":
            self._show(options["driver"], as_json=options["json"])
        elif action == "proposals":
            self._proposals(options["state"], as_json=options["json"])
        elif action in ("approve", "reject"):
            proposal = deduction_decide(
                proposal_id=options["proposal_id"],
                approve=action == "approve",
                actor=actor,
                reason=options["reason"],
            )
            moved = (
                f": {proposal.approved_amount} KSH moved from the deposit to the target"
                if proposal.state == Decision.APPROVED
                else ""
            )
            self.stdout.write(
                f"Deduction proposal {proposal.pk} ({proposal.driver.driver_id}, missed "
                f"{proposal.business_day}) {proposal.state}{moved}."
            )
        else:
            self._report(deposit_report(), csv_target=options["csv"], as_json=options["json"])

    def _print_entry(self, entry: DepositEntry) -> None:
        self.stdout.write(
            f"{entry.driver.driver_id} deposit #{entry.seq}: {entry.kind} {entry.amount:+} KSH, "
            f"balance {entry.balance_after} KSH."
        )

    def _settings(self, options: dict[str, Any], actor: str) -> None:
        def yes_no(name: str) -> bool | None:
            return None if options[name] is None else YES_NO[options[name]]

        account = deposit_settings_set(
            driver_id=options["driver"],
            actor=actor,
            required=yes_no("required"),
            initial_amount=options["initial"],
            allow_target_deduction=yes_no("allow_deduction"),
        )
        allowed = "allowed" if account.allow_target_deduction else "not allowed"
        self.stdout.write(
            f"{account.driver.driver_id} deposit settings: required "
            f"{'yes' if account.required else 'no'}, initial amount {account.initial_amount} "
            f"KSH, target deduction {allowed}."
        )

    def _show(self, driver_id: str, *, as_json: bool) -> None:
        deposit = selectors.deposit_detail(driver_id=driver_id)
        if as_json:
            self.stdout.write(jsonutil.dumps(deposit, indent=2))
            return
        write = self.stdout.write
        write(
            f"Deposit of {deposit['driver_id']} {deposit['name']} ({deposit['status']}): "
            f"balance {deposit['balance']} KSH"
        )
        write(
            f"Required: {'yes' if deposit['required'] else 'no'}, initial amount "
            f"{deposit['initial_amount']} KSH, target deduction "
            f"{'allowed' if deposit['allow_target_deduction'] else 'not allowed'}"
        )
        if not deposit["entries"]:
            write("No deposit entries.")
            return
        write(
            f"{'#':>4}  {'time':16}  {'kind':16} {'amount':>11} {'balance':>11}  actor / reference"
        )
        for entry in deposit["entries"]:
            reference = entry["reference"] + (
                f" ({entry['trans_id']})" if entry["trans_id"] else ""
            )
            write(
                f"{entry['seq']:>4}  {timezone.localtime(entry['created_at']):%Y-%m-%d %H:%M}  "
                f"{entry['kind']:16} "
                f"{entry['amount']:>11} {entry['balance_after']:>11}  "
                f"{entry['actor'] or '-'} / {reference}"
            )

    def _proposals(self, state: str, *, as_json: bool) -> None:
        page = selectors.proposal_list(
            state=None if state == ALL_STATES else state, limit=LIST_LIMIT, offset=0
        )
        if as_json:
            self.stdout.write(jsonutil.dumps(page.items, indent=2))
            return
        for p in page.items:
            decided = f" by {p['decided_by']}" if p["decided_by"] else ""
            self.stdout.write(
                f"{p['id']:>6} {p['driver_id']} {p['business_day']} missed by {p['shortfall']:>9}, "
                f"from the deposit {p['amount']:>9} {p['state']}{decided} {p['reason'][:60]}"
            )
        self.stdout.write(f"{page.count} deduction proposal(s) ({state}).")

    def _report(self, report: DepositReport, *, csv_target: str | None, as_json: bool) -> None:
        if as_json:
            self.stdout.write(jsonutil.dumps(report.as_dict(), indent=2))
            return
        if csv_target:
            self._write_csv(deposit_report_csv(report), csv_target)
            return
        write = self.stdout.write
        write(
            f"{'driver':10} {'status':10} {'req.':4} {'initial':>10} {'balance':>11} "
            f"{'top-ups':>11} {'deductions':>11} {'refunds':>11} {'open':>4}  name"
        )
        for row in report.rows:
            write(
                f"{row.driver_id:10} {row.status:10} {'yes' if row.required else 'no':4} "
                f"{row.initial_amount:>10} {row.balance:>11} {row.top_ups:>11} "
                f"{row.deductions:>11} {row.refunds:>11} {row.open_proposals:>4}  {row.name}"
            )
        totals = report.totals
        write(
            f"{len(report.rows)} driver(s): deposits {totals['balance']} KSH = top-ups "
            f"{totals['top_ups']} − deductions {totals['deductions']} − refunds "
            f"{totals['refunds']}; {totals['open_proposals']} proposal(s) waiting."
        )

    def _write_csv(self, text: str, target: str) -> None:
        if target == "-":
            self.stdout.write(text, ending="")  # the CSV ends with its own CRLF
            return
        try:
            # newline="": the CRLFs the csv module wrote are kept as they are on every OS.
            with open(target, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from exc
        self.stdout.write(f"Wrote the deposit report CSV to {target}")
