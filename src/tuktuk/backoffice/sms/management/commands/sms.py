"""`tuktuk sms send|broadcast|status|retry`: driver SMS from the command line.

tuktuk sms send DRIVER --text TEXT --user U
tuktuk sms broadcast (--all | --driver D [--driver D ...]) --text TEXT --user U
tuktuk sms status [--state S] [--kind K] [--driver D] [--limit N] [--json]
tuktuk sms retry ID --reason TEXT --user U        (failed or unknown messages only)

Messages are queued here and sent by the worker (`tuktuk worker`), exactly once.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import SEND_SMS
from tuktuk.backoffice.sms.models import SmsKind, SmsState
from tuktuk.backoffice.sms.selectors import sms_status
from tuktuk.backoffice.sms.services import sms_broadcast, sms_retry, sms_send_to_driver
from tuktuk.core import jsonutil


class Command(OperatorCommand):
    help = "Send, broadcast, list and retry SMS to drivers (sent by the worker, exactly once)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        send = sub.add_parser("send", help="one message to one driver")
        send.add_argument("driver")
        send.add_argument("--text", required=True)
        self.add_user_argument(send)
        broadcast = sub.add_parser("broadcast", help="one message to all or some drivers")
        who = broadcast.add_mutually_exclusive_group(required=True)
        who.add_argument("--all", action="store_true", help="every active driver")
        who.add_argument("--driver", action="append", help="a driver id (repeat for several)")
        broadcast.add_argument("--text", required=True)
        self.add_user_argument(broadcast)
        status = sub.add_parser("status", help="the outbox: counts by state and the last ones")
        status.add_argument("--state", choices=SmsState.values)
        status.add_argument("--kind", choices=SmsKind.values)
        status.add_argument("--driver")
        status.add_argument("--limit", type=int, default=30)
        status.add_argument("--json", action="store_true")
        retry = sub.add_parser("retry", help="send a failed or unknown message again")
        retry.add_argument("message_id", type=int)
        retry.add_argument("--reason", required=True)
        self.add_user_argument(retry)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "status":
            self._status(options)
            return
        actor = self.acting(options, SEND_SMS)
        if action == "send":
            message = sms_send_to_driver(
                driver_id=options["driver"], text=options["text"], actor=actor
            )
            self.stdout.write(f"SMS {message.pk} to {options['driver']} queued.")
        elif action == "broadcast":
            result = sms_broadcast(
                text=options["text"],
                actor=actor,
                driver_ids=None if options["all"] else options["driver"],
            )
            line = f"Broadcast {result.batch}: {result.queued} SMS queued."
            if result.opted_out:
                line += f" Opted out (not sent): {', '.join(result.opted_out)}."
            if result.not_active:
                line += f" Not active (not sent): {', '.join(result.not_active)}."
            self.stdout.write(line)
        elif action == "retry":
            message = sms_retry(
                message_id=options["message_id"], actor=actor, reason=options["reason"]
            )
            self.stdout.write(f"SMS {message.pk} queued again.")

    def _status(self, options: dict[str, Any]) -> None:
        status = sms_status(
            state=options["state"],
            kind=options["kind"],
            driver_id=options["driver"],
            limit=options["limit"],
        )
        if options["json"]:
            self.stdout.write(jsonutil.dumps(status.as_dict()))
            return
        counts = ", ".join(f"{state} {count}" for state, count in status.counts.items())
        self.stdout.write(f"Outbox ({status.gateway} gateway): {counts or 'empty'}")
        for row in status.messages:
            self.stdout.write(
                f"{row.id:>6} {row.created_at:%Y-%m-%d %H:%M} {row.kind:<13} "
                f"{row.driver_id or '-':<10} {row.phone} {row.state:<9} "
                f"{row.provider_status or ''} {row.detail}".rstrip()
            )
