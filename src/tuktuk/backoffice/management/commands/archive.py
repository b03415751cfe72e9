"""`tuktuk archive [--older-than DAYS] [--dry-run] [--json]`: archive old callbacks and events
to files in TUKTUK_ARCHIVE_DIR, then delete them (see tuktuk.backoffice.retention)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.retention import records_archive
from tuktuk.backoffice.roles import ARCHIVE
from tuktuk.core import jsonutil
from tuktuk.core.archive import ArchiveError


class Command(OperatorCommand):
    help = "Archive old stored callbacks and events to compressed files, then delete them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            help="archive what is older than DAYS days (default: $TUKTUK_RETENTION_DAYS, 400)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be archived; change nothing"
        )
        parser.add_argument("--json", action="store_true", help="print the JSON answer")
        self.add_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        actor = ""
        if not options["dry_run"]:
            for permission in ARCHIVE:
                actor = self.acting(options, permission)
        try:
            report = records_archive(
                older_than_days=options["older_than"], dry_run=options["dry_run"], actor=actor
            )
        except ArchiveError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(jsonutil.dumps(report.as_dict(), indent=2))
            return
        verb = "would archive" if report.dry_run else "archived"
        self.stdout.write(
            f"Records from before {timezone.localtime(report.before):%Y-%m-%d %H:%M %Z}:"
        )
        for run in (report.callbacks, report.events):
            line = f"  {run.name}: {verb} {run.archived}"
            if not report.dry_run:
                line += f", deleted {run.deleted}"
                if run.path:
                    line += f", file {run.path}"
            self.stdout.write(line)
