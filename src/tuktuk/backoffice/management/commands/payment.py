"""`tuktuk payment record-missed --trans-id ID --amount A --msisdn M --time YYYYMMDDHHMMSS
--vehicle V --reason TEXT`: a payment the webhook never delivered."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import RECORD_MISSED
from tuktuk.core.dates import MOMENT_FORMATS
from tuktuk.ledger.missed import missed_payment_record


class Command(OperatorCommand):
    help = "Record a payment M-Pesa took but never delivered to us."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        missed = sub.add_parser("record-missed")
        missed.add_argument("--trans-id", required=True)
        missed.add_argument("--amount", required=True)
        missed.add_argument("--msisdn", required=True)
        missed.add_argument("--time", required=True, help=f"M-Pesa time, {MOMENT_FORMATS}")
        missed.add_argument("--vehicle", required=True)
        missed.add_argument("--reason", required=True)
        self.add_user_argument(missed)

    def handle(self, *args: Any, **options: Any) -> None:
        actor = self.acting(options, RECORD_MISSED)
        record = missed_payment_record(
            trans_id=options["trans_id"],
            amount=options["amount"],
            msisdn=options["msisdn"],
            mpesa_time=options["time"],
            vehicle_id=options["vehicle"],
            reason=options["reason"],
            actor=actor,
        )
        self.stdout.write(f"{record.trans_id}: {record.state}. {record.detail}".strip())
