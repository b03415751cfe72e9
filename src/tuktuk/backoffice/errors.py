"""One mapping of operator errors to what each edge shows: the HTTP status of the JSON API,
the CLI's exit code, the admin's message level, and the exception type the legacy calls
(/api/method/, backoffice.frappe) name as Frappe would. Services raise tuktuk.core.errors kinds;
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
    frappe_exc_type: str


# CLI exit 1 is kept for "discrepancies remain" (the legacy reconcile tools' contract).
_SHAPES: dict[type[OperatorError], ErrorShape] = {
    InvalidInput: ErrorShape(
        http_status=400, cli_exit=2, admin_level=messages.ERROR, frappe_exc_type="ValidationError"
    ),
    NotFound: ErrorShape(
        http_status=404, cli_exit=3, admin_level=messages.ERROR, frappe_exc_type="DoesNotExistError"
    ),
    NotAllowed: ErrorShape(
        http_status=403, cli_exit=4, admin_level=messages.ERROR, frappe_exc_type="PermissionError"
    ),
    Conflict: ErrorShape(
        http_status=409,
        cli_exit=5,
        admin_level=messages.WARNING,
        frappe_exc_type="TimestampMismatchError",
    ),
}
_DEFAULT = _SHAPES[InvalidInput]


def error_shape(error: OperatorError) -> ErrorShape:
    for kind in type(error).__mro__:
        if kind in _SHAPES:
            return _SHAPES[kind]
    return _DEFAULT


def admin_error(request: HttpRequest, error: OperatorError) -> None:
    """Show an operator error on the next admin page, at its level."""
    messages.add_message(request, error_shape(error).admin_level, str(error))
