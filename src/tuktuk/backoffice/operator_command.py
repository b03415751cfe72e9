"""Base for our CLI commands: who is acting (--user, checked against the roles), and operator
errors as one clear line with the exit code of the one error mapping (backoffice.errors)."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tuktuk.backoffice.errors import error_shape
from tuktuk.backoffice.roles import operator
from tuktuk.core.errors import NotAllowed, OperatorError


class OperatorCommand(BaseCommand):
    def add_user_argument(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user",
            default=os.environ.get("TUKTUK_OPERATOR", ""),
            help="the operator's username (default: $TUKTUK_OPERATOR); needs the permission",
        )

    def acting(self, options: dict[str, Any], permission: str, *more: str) -> str:
        if not options.get("user"):
            raise CommandError("who is acting? pass --user USERNAME (or set TUKTUK_OPERATOR)")
        try:
            return operator(options["user"], permission, *more)
        except NotAllowed as exc:
            raise CommandError(str(exc), returncode=error_shape(exc).cli_exit) from exc

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except OperatorError as exc:
            raise CommandError(str(exc), returncode=error_shape(exc).cli_exit) from exc
