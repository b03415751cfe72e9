"""`tuktuk import-fleet FILE.csv`: onboard or update a fleet from a spreadsheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import IMPORT_FLEET
from tuktuk.fleet.importer import COLUMNS, REQUIRED_COLUMNS, ImportRejected, fleet_import


class Command(OperatorCommand):
    help = (
        "Import drivers and vehicles from a CSV file with a header row. Columns: "
        + ", ".join(c if c in REQUIRED_COLUMNS else f"{c} (optional)" for c in COLUMNS)
        + ". Re-importing updates, never duplicates. A file with any problem is refused whole."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="CSV file (UTF-8; Excel's 'CSV UTF-8' works)")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check the file against the database only."
        )
        self.add_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        # An import sets targets and fare percentages: a fleet manager's, in the audit log. A
        # dry run changes nothing and needs nobody.
        actor = "" if options["dry_run"] else self.acting(options, *IMPORT_FLEET)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            result = fleet_import(data=data, dry_run=options["dry_run"], actor=actor)
        except ImportRejected as exc:
            for problem in exc.problems:
                self.stderr.write(str(problem))
            count = len(exc.problems)
            raise CommandError(
                f"{path}: refused, nothing was imported ({count} problem{'s' * (count != 1)})."
            ) from exc
        for line in result.summary_lines():
            self.stdout.write(line)
