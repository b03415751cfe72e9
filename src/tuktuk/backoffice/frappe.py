"""The legacy app's whitelisted calls over HTTP, served as Frappe serves them, so the scripts,
cron jobs and desk buttons written against `tuktuk_management` keep working unchanged.

`GET` or `POST /api/method/<dotted.path>`: the arguments come from the query string, a form
body (urlencoded or multipart) or a JSON object body; the return value is wrapped as
`{"message": …}`. Clients authenticate with `Authorization: token <api_key>:<api_secret>` (or
HTTP Basic with the same pair), keys issued per user by `tuktuk create-api-token --frappe`, and
act with that user's roles, as on the JSON API: a fix needs the permission to fix balances.

What the legacy call reported as a failure (an unknown driver, a bad date) is answered as it
did: HTTP 200, `{"message": {"success": false, "error": "Failed to …: why"}}`. What Frappe
itself refuses before the call is an HTTP error with `{"success": false, "error", "exc_type"}`:
no valid key (401), a missing permission (403), an unknown method (404), a body that cannot be
read (400, 413). The answers themselves are built in backoffice.legacy, key for key.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from tuktuk.backoffice import legacy, roles
from tuktuk.backoffice.api_auth import user_for_frappe_authorization
from tuktuk.backoffice.errors import error_shape
from tuktuk.core import jsonutil
from tuktuk.core.errors import InvalidInput, NotAllowed, OperatorError

logger = logging.getLogger(__name__)

LEGACY_MODULE = "tuktuk_management.api.tuktuk"
# Arguments Frappe's clients add to every call, which no whitelisted function receives.
_FRAMEWORK_ARGUMENTS = {"cmd"}
_MAX_TEXT = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class FrappeCall:
    """One call: the dotted path as called, its arguments (parsed), and who calls."""

    path: str
    arguments: dict[str, Any]
    username: str

    def as_written(self) -> str:
        """The call as a legacy script would write it, for the audit trail of a fix."""
        shown = ", ".join(
            f"{name}={value!r}" for name, value in self.arguments.items() if name != "reason"
        )
        return f"{self.path}({shown}) by {self.username} over /api/method"


@dataclass(frozen=True)
class FrappeMethod:
    function: str  # the legacy function's name (its failures are worded after it)
    arguments: tuple[str, ...]  # what it accepts, in the legacy order
    required: tuple[str, ...]
    run: Callable[[FrappeCall], Any]
    # The arguments with which a call moves money (needs the fix permission); None: never.
    writes_when: Callable[[dict[str, Any]], bool] | None = None


# --- reading the arguments as Frappe would ----------------------------------------------------


def frappe_bool(value: Any, *, name: str) -> bool:
    """Frappe's booleans: true/false, 1/0, and the strings "1", "0", "true", "false" (any
    case, as HTML forms, desk calls and Python clients send them; "" is false)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true"):
            return True
        if text in ("0", "false", ""):
            return False
    raise InvalidInput(f"{name} must be 1, 0, true or false, not {value!r}")


def _text(value: Any, *, name: str, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, not {type(value).__name__}")
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{name} is required")
    if len(text) > _MAX_TEXT or _CONTROL.search(text):
        raise InvalidInput(f"{name} is not a valid value")
    return text


def _date(value: Any) -> str | None:
    text = _text(value, name="date")
    return None if text.lower() in ("", "null", "none") else text


def _arguments(method: FrappeMethod, raw: Mapping[str, Any]) -> dict[str, Any]:
    given = {k: v for k, v in raw.items() if k not in _FRAMEWORK_ARGUMENTS and k[:1] != "_"}
    unknown = sorted(set(given) - set(method.arguments))
    if unknown:
        # Frappe would drop them silently; a misspelt "autofix" must not become a preview the
        # caller takes for a fix.
        raise InvalidInput(
            f"unexpected argument(s) {', '.join(unknown)}; "
            f"{method.function} takes {', '.join(method.arguments)}"
        )
    for name in method.required:
        if name not in given:
            raise InvalidInput(f"{method.function}() missing required argument: '{name}'")
    parsed: dict[str, Any] = {}
    for name in method.arguments:
        if name not in given:
            continue
        value = given[name]
        if name == "auto_fix":
            parsed[name] = frappe_bool(value, name=name)
        elif name == "date":
            parsed[name] = _date(value)
        else:
            parsed[name] = _text(value, name=name, required=name in method.required)
    return parsed


# --- the methods ----------------------------------------------------------------------------


def _reason(call: FrappeCall) -> str:
    """The legacy calls take no reason: the call itself is recorded (an explicit `reason`
    argument, which only TukTuk Ledger reads, comes first)."""
    given = str(call.arguments.get("reason") or "")
    return f"{given} ({call.as_written()})" if given else call.as_written()


def _reconcile(call: FrappeCall) -> dict[str, Any]:
    return legacy.frappe_reconcile_driver_balance(
        call.arguments["driver_name"], call.arguments.get("date")
    )


def _fix(call: FrappeCall) -> dict[str, Any]:
    return legacy.frappe_fix_driver_balance(
        call.arguments["driver_name"],
        call.arguments.get("date"),
        call.arguments.get("auto_fix", False),
        reason=_reason(call),
        actor=call.username,
    )


def _reconcile_all(call: FrappeCall) -> dict[str, Any]:
    return legacy.frappe_reconcile_all_drivers_balances(
        call.arguments.get("date"),
        call.arguments.get("auto_fix", False),
        reason=_reason(call),
        actor=call.username,
    )


def _logged_user(call: FrappeCall) -> str:
    return call.username


def _auto_fix(arguments: dict[str, Any]) -> bool:
    return bool(arguments.get("auto_fix"))


FRAPPE_METHODS: dict[str, FrappeMethod] = {
    f"{LEGACY_MODULE}.reconcile_driver_balance": FrappeMethod(
        "reconcile_driver_balance", ("driver_name", "date"), ("driver_name",), _reconcile
    ),
    f"{LEGACY_MODULE}.fix_driver_balance": FrappeMethod(
        "fix_driver_balance",
        ("driver_name", "date", "auto_fix", "reason"),
        ("driver_name",),
        _fix,
        writes_when=_auto_fix,
    ),
    f"{LEGACY_MODULE}.reconcile_all_drivers_balances": FrappeMethod(
        "reconcile_all_drivers_balances",
        ("date", "auto_fix", "reason"),
        (),
        _reconcile_all,
        writes_when=_auto_fix,
    ),
    # What scripts call to check their key works.
    "frappe.auth.get_logged_user": FrappeMethod("get_logged_user", (), (), _logged_user),
}


# --- HTTP -------------------------------------------------------------------------------------


def _json(body: dict[str, Any], status: int = 200) -> HttpResponse:
    return HttpResponse(
        jsonutil.dumps(body), status=status, content_type="application/json; charset=utf-8"
    )


def _refusal(status: int, error: str, exc_type: str) -> HttpResponse:
    response = _json({"success": False, "error": error, "exc_type": exc_type}, status)
    if status == 401:
        response["WWW-Authenticate"] = 'token realm="tuktuk"'
    return response


class _Unreadable(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _request_arguments(request: HttpRequest) -> dict[str, Any]:
    """Frappe's form_dict: the query string, then the body over it."""
    arguments: dict[str, Any] = {key: request.GET.get(key) for key in request.GET}
    if request.method != "POST":
        return arguments
    try:
        if request.content_type == "application/json":
            try:
                body = json.loads(request.body or b"{}", parse_float=Decimal)
            except (ValueError, UnicodeDecodeError) as exc:
                raise _Unreadable(400, f"the body is not JSON: {exc}") from exc
            if not isinstance(body, dict):
                raise _Unreadable(400, "the JSON body must be an object of arguments")
            arguments.update(body)
        else:
            arguments.update({key: request.POST.get(key) for key in request.POST})
    except RequestDataTooBig as exc:
        raise _Unreadable(413, "request body too large") from exc
    except SuspiciousOperation as exc:
        raise _Unreadable(400, f"the body cannot be read: {exc}") from exc
    return arguments


def _caller(request: HttpRequest) -> User | None:
    header = request.headers.get("Authorization", "")
    return user_for_frappe_authorization(header) if header else None


@csrf_exempt
def frappe_method(request: HttpRequest, path: str) -> HttpResponse:
    """`/api/method/<path>`: one of FRAPPE_METHODS, called as Frappe calls whitelisted
    functions. Token authentication: no session, so no CSRF token either."""
    if request.method not in ("GET", "POST"):
        return _refusal(405, f"{request.method} is not allowed: use GET or POST", "ValidationError")
    method = FRAPPE_METHODS.get(path)
    if method is None:
        return _refusal(404, f"no method {path[:200]!r} here", "DoesNotExistError")
    user = _caller(request)
    if user is None:
        return _refusal(
            401,
            "a valid API key is required: Authorization: token <api_key>:<api_secret> "
            "(tuktuk create-api-token USER --frappe)",
            "AuthenticationError",
        )
    try:
        raw = _request_arguments(request)
    except _Unreadable as exc:
        return _refusal(exc.status, exc.error, "ValidationError")
    username = str(user.get_username())
    try:
        arguments = _arguments(method, raw)
        if method.writes_when is not None and method.writes_when(arguments):
            roles.require(user, roles.FIX_BALANCE)
        result = method.run(FrappeCall(path, arguments, username))
    except NotAllowed as exc:
        return _refusal(403, str(exc), error_shape(exc).frappe_exc_type)
    except OperatorError as exc:
        # As the legacy function answered what it caught: a failure in the message.
        return _json({"message": legacy.frappe_error_json(method.function, str(exc))})
    except Exception:
        logger.exception("legacy call failed", extra={"method": path, "actor": username})
        body = legacy.frappe_error_json(method.function, "internal error (see the server log)")
        return _json({**body, "exc_type": "InternalServerError"}, 500)
    return _json({"message": result})
