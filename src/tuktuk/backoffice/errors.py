"""One mapping of operator errors to what each edge shows: the HTTP status of the JSON API,
the CLI's exit code, and the admin's message level. Services raise tuktuk.core.errors kinds;
views, commands and admin actions never re-map them by hand."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpRequest

from tuktuk.core.errors import Conflict, InvalidInput, NotAllowed, NotFound, OperatorError


@dataclass(frozen=True)
class ErrorShape:
    http_status: int
    cli_exit: int
    admin_level: int


# CLI exit 1 is kept for "discrepancies remain" (the legacy reconcile tools' contract).
_SHAPES: dict[type[OperatorError], ErrorShape] = {
    InvalidInput: ErrorShape(http_status=400, cli_exit=2, admin_level=messages.ERROR),
    NotFound: ErrorShape(http_status=404, cli_exit=3, admin_level=messages.ERROR),
    NotAllowed: ErrorShape(http_status=403, cli_exit=4, admin_level=messages.ERROR),
    Conflict: ErrorShape(http_status=409, cli_exit=5, admin_level=messages.WARNING),
}
_DEFAULT = ErrorShape(http_status=400, cli_exit=2, admin_level=messages.ERROR)


def error_shape(error: OperatorError) -> ErrorShape:
    for kind in type(error).__mro__:
        if kind in _SHAPES:
            return _SHAPES[kind]
    return _DEFAULT


def admin_error(request: HttpRequest, error: OperatorError) -> None:
    """Show an operator error on the next admin page, at its level."""
    messages.add_message(request, error_shape(error).admin_level, str(error))
