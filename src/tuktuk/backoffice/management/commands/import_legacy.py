"""`tuktuk import-legacy FILE|DIR|DocType=FILE ... [--dry-run] [--json] --user U`: a fleet's
data from the legacy Frappe app (backoffice.legacy_import): settings, vehicles, drivers and
substitutes with their balances, rollover debt, misses and deposits, and past transactions.

Give it the Data Export CSVs or /api/resource JSON files of the legacy doctypes (a directory:
every .csv and .json in it). A dry run checks everything against the database and prints the
report of a real run; a file with any problem is refused whole and nothing is written; running
it again changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from tuktuk.backoffice.frappe_export import DOCTYPES, export_read
from tuktuk.backoffice.legacy_import import LegacyImportRejected, legacy_import
from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import IMPORT_LEGACY
from tuktuk.core import jsonutil


class Command(OperatorCommand):
    help = (
        "Import a fleet from the legacy tuktuk_management app's data export (Frappe Data "
        "Export CSV or /api/resource JSON of: " + ", ".join(DOCTYPES) + "). All or nothing; "
        "running it twice changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "paths",
            nargs="+",
            help="export files or directories; 'TukTuk Driver=drivers.csv' names a file's doctype",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="check everything and report; write nothing (needs no --user)",
        )
        parser.add_argument("--json", action="store_true", help="the report as JSON")
        self.add_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        # A real import sets balances, deposits and settings: a fleet manager's, audited.
        actor = "" if options["dry_run"] else self.acting(options, *IMPORT_LEGACY)
        read = export_read(options["paths"])
        try:
            result = legacy_import(read=read, dry_run=options["dry_run"], actor=actor)
        except LegacyImportRejected as exc:
            for problem in exc.problems:
                self.stderr.write(str(problem))
            count = len(exc.problems)
            raise CommandError(
                f"refused, nothing was imported ({count} problem{'s' * (count != 1)})."
            ) from exc
        if options["json"]:
            self.stdout.write(jsonutil.dumps(result.as_dict()))
        else:
            for line in result.summary_lines():
                self.stdout.write(line)
