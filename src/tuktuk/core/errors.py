"""Errors an operator (or an API client) can act on, by kind. Services raise these; each edge
maps the kind once (backoffice.errors): HTTP status, CLI exit, admin message."""

from __future__ import annotations


class OperatorError(Exception):
    """Bad input or a refused action, said in one line an operator can act on."""


class InvalidInput(OperatorError, ValueError):
    """The request itself is wrong: a malformed amount, a date in the future, no reason."""


class NotFound(OperatorError, LookupError):
    """The driver, payout or payment named does not exist."""


class NotAllowed(OperatorError, PermissionError):
    """The acting user lacks the permission for this action."""


class Conflict(OperatorError):
    """The state changed meanwhile, or the action does not apply to the current state (a
    payout that is not failed cannot be retried); looking again may help."""


def require_reason(reason: str) -> str:
    """Every action that moves money says why (it goes into the audit trail)."""
    if not reason or not reason.strip():
        raise InvalidInput("a reason is required when money moves")
    return reason.strip()
