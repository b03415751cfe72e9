"""`tuktuk replay-callbacks --user U`: re-process failed or stalled C2B confirmations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.operator_services import callbacks_replay_by
from tuktuk.backoffice.roles import REPLAY_CALLBACKS


class Command(OperatorCommand):
    help = "Re-process failed C2B confirmations (and received ones older than --stale-seconds)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stale-seconds", type=int, default=120)
        self.add_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        # A replay posts payments: money, so an operator with the permission, in the audit log.
        actor = self.acting(options, REPLAY_CALLBACKS)
        counts = callbacks_replay_by(
            actor=actor, stale_after=dt.timedelta(seconds=options["stale_seconds"])
        )
        total = sum(counts.values())
        details = (
            ", ".join(f"{state}: {n}" for state, n in sorted(counts.items())) or "nothing to do"
        )
        self.stdout.write(f"Replayed {total} callback(s): {details}")
