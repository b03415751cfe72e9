"""M-Pesa set-up: registering our C2B validation and confirmation URLs with Daraja, and
checking the whole set-up against Daraja (or the simulator) before money flows.

The check answers one line per thing looked at, each ok or saying what is wrong:

- the configuration (every Daraja setting present);
- OAuth: the consumer key and secret get a token;
- every callback URL (C2B validation and confirmation, B2C result and timeout, status result
  and timeout): Daraja's rules for C2B URLs (no "mpesa", "safaricom", "exe", "cmd", "sql",
  "query"… anywhere in them; https against production), and that TUKTUK_PUBLIC_URL reaches
  this deployment with this token (a GET answers our 405 "POST only"; 404 is the wrong token
  or another server);
- the B2C initiator: an Account Balance query (no money moves) with the initiator name and
  security credential; M-Pesa's answer comes to our status-result URL, is stored raw like every
  callback, and is read back here: 0 means the initiator works, 2001 that it is not valid. Its
  arrival also shows that Safaricom reaches our callback URLs.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.utils import timezone

from tuktuk.core.errors import InvalidInput
from tuktuk.mpesa import daraja
from tuktuk.mpesa.b2c_callbacks import parse_result
from tuktuk.mpesa.c2b import CallbackRejected
from tuktuk.mpesa.models import Callback, CallbackKind

RESPONSE_TYPES = ("Completed", "Cancelled")
# Daraja's docs: "Do not use keywords such as M-PESA, M-Pesa, Safaricom, exe, exec, cmd, SQL,
# query, or any of their variants in either upper or lower cases in your URLs."
FORBIDDEN_URL_WORDS = ("m-pesa", "mpesa", "safaricom", "exe", "exec", "cmd", "sql", "query")
PRODUCTION_HOST = "api.safaricom.co.ke"
REQUIRED_SETTINGS = (
    ("MPESA_CONSUMER_KEY", "TUKTUK_MPESA_CONSUMER_KEY"),
    ("MPESA_CONSUMER_SECRET", "TUKTUK_MPESA_CONSUMER_SECRET"),
    ("MPESA_SHORTCODE", "TUKTUK_MPESA_SHORTCODE"),
    ("MPESA_INITIATOR_NAME", "TUKTUK_MPESA_INITIATOR_NAME"),
    ("MPESA_SECURITY_CREDENTIAL", "TUKTUK_MPESA_SECURITY_CREDENTIAL"),
)
_POLL_SECONDS = 0.25


def callback_urls() -> dict[str, str]:
    """Every URL Safaricom calls us at, by what it is for."""
    base, token = settings.PUBLIC_URL, settings.CALLBACK_TOKEN
    return {
        "C2B validation": f"{base}/c2b/{token}/validation",
        "C2B confirmation": f"{base}/c2b/{token}/confirmation",
        "B2C result": f"{base}/b2c/{token}/result",
        "B2C timeout": f"{base}/b2c/{token}/timeout",
        "status result": f"{base}/b2c/{token}/status-result",
        "status timeout": f"{base}/b2c/{token}/status-timeout",
    }


def shown(url: str) -> str:
    """A callback URL as it may be printed: the secret token replaced."""
    return url.replace(settings.CALLBACK_TOKEN, "<token>") if settings.CALLBACK_TOKEN else url


def url_problems(url: str, *, c2b: bool) -> list[str]:
    """What Daraja would refuse in one of our callback URLs."""
    problems = []
    parts = urlsplit(url)
    if urlsplit(settings.MPESA_BASE_URL).hostname == PRODUCTION_HOST and parts.scheme != "https":
        problems.append("production Daraja calls https URLs only (set TUKTUK_PUBLIC_URL)")
    if c2b:
        lowered = url.lower()
        for word in FORBIDDEN_URL_WORDS:
            if word in lowered:
                where = (
                    "the callback token (set a new TUKTUK_CALLBACK_TOKEN)"
                    if word in settings.CALLBACK_TOKEN.lower()
                    else "TUKTUK_PUBLIC_URL"
                )
                problems.append(f"contains {word!r}, which Daraja refuses in C2B URLs: in {where}")
                break
    return problems


@dataclass(frozen=True)
class Registration:
    short_code: str
    response_type: str
    confirmation_url: str
    validation_url: str
    description: str


def c2b_urls_register(
    *, client: daraja.DarajaClient, short_code: str = "", response_type: str = "Completed"
) -> Registration:
    """Register our validation and confirmation URLs for the shortcode (default: ours).
    InvalidInput for what Daraja would refuse anyway; DarajaCallFailed with Daraja's reason."""
    short_code = (short_code or settings.MPESA_SHORTCODE).strip()
    if not short_code.isdigit():
        raise InvalidInput(f"the shortcode {short_code!r} is not a number")
    if response_type not in RESPONSE_TYPES:
        raise InvalidInput(f"the response type must be {' or '.join(RESPONSE_TYPES)}")
    urls = callback_urls()
    confirmation, validation = urls["C2B confirmation"], urls["C2B validation"]
    problems = [
        f"{name} URL {shown(url)}: {problem}"
        for name, url in (("confirmation", confirmation), ("validation", validation))
        for problem in url_problems(url, c2b=True)
    ]
    if problems:
        raise InvalidInput("; ".join(problems))
    answer = client.c2b_register_urls(
        short_code=short_code,
        response_type=response_type,
        confirmation_url=confirmation,
        validation_url=validation,
    )
    return Registration(
        short_code=short_code,
        response_type=response_type,
        confirmation_url=confirmation,
        validation_url=validation,
        description=str(answer.get("ResponseDescription", "")),
    )


@dataclass(frozen=True)
class CheckLine:
    what: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'PROBLEM'}  {self.what}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "ok": self.ok, "detail": self.detail}


def _daraja_error(exc: httpx.HTTPStatusError) -> str:
    try:
        body = exc.response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code, message = body.get("errorCode", ""), body.get("errorMessage", "")
    return f"HTTP {exc.response.status_code} {code} {message}".strip()


def _oauth_check() -> CheckLine:
    """The consumer key and secret against Daraja's OAuth (the request DarajaClient makes)."""
    try:
        response = httpx.get(
            f"{settings.MPESA_BASE_URL}/oauth/v1/generate",
            params={"grant_type": "client_credentials"},
            auth=(settings.MPESA_CONSUMER_KEY, settings.MPESA_CONSUMER_SECRET),
            timeout=settings.MPESA_TIMEOUT_SECONDS,
        )
        response.raise_for_status()
        token = response.json()["access_token"]
    except httpx.HTTPStatusError as exc:
        return CheckLine(
            "OAuth", False, f"Daraja refused the consumer key and secret ({_daraja_error(exc)})"
        )
    except httpx.HTTPError as exc:
        return CheckLine(
            "OAuth", False, f"cannot reach {settings.MPESA_BASE_URL} ({type(exc).__name__})"
        )
    except (KeyError, ValueError, TypeError):
        token = None
    if not token:
        return CheckLine("OAuth", False, "the answer has no access_token: is this Daraja?")
    return CheckLine("OAuth", True, f"the consumer key gets a token from {settings.MPESA_BASE_URL}")


def _callback_check(name: str, url: str) -> CheckLine:
    what = f"{name} URL {shown(url)}"
    problems = url_problems(url, c2b=name.startswith("C2B"))
    if problems:
        return CheckLine(what, False, "; ".join(problems))
    try:
        response = httpx.get(url, timeout=10, follow_redirects=False)
    except httpx.HTTPError as exc:
        return CheckLine(what, False, f"cannot be reached from here ({type(exc).__name__})")
    try:
        ours = response.json().get("ResultDesc") == "POST only"
    except (ValueError, AttributeError):
        ours = False
    if response.status_code == 405 and ours:
        return CheckLine(what, True, "reaches TukTuk Ledger with this callback token")
    if response.status_code == 404:
        return CheckLine(
            what,
            False,
            "answers 404: the token is not this server's TUKTUK_CALLBACK_TOKEN, or "
            "TUKTUK_PUBLIC_URL does not lead to TukTuk Ledger",
        )
    return CheckLine(
        what, False, f"answers HTTP {response.status_code}: not TukTuk Ledger's callback view"
    )


def _balance_result(ocid: str, since: dt.datetime) -> Callback | None:
    return (
        Callback.objects.filter(
            kind__in=[CallbackKind.STATUS_RESULT, CallbackKind.STATUS_TIMEOUT],
            received_at__gte=since,
            body__contains=ocid,
        )
        .order_by("received_at", "id")
        .first()
    )


def _initiator_check(client: daraja.DarajaClient, wait_seconds: float) -> CheckLine:
    what = (
        f"B2C initiator {settings.MPESA_INITIATOR_NAME!r} of shortcode {settings.MPESA_SHORTCODE}"
    )
    urls = callback_urls()
    since = timezone.now() - dt.timedelta(seconds=1)
    try:
        answer = client.account_balance(
            result_url=urls["status result"], timeout_url=urls["status timeout"]
        )
    except daraja.DarajaCallFailed as exc:
        return CheckLine(what, False, f"Daraja refused an Account Balance query ({exc})")
    ocid = str(answer.get("OriginatorConversationID", ""))
    if wait_seconds <= 0 or not ocid:
        return CheckLine(what, True, "an Account Balance query was accepted (result not awaited)")
    deadline = time.monotonic() + wait_seconds
    stored = _balance_result(ocid, since)
    while stored is None and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)  # the result is posted to our server by M-Pesa, not to us
        stored = _balance_result(ocid, since)
    if stored is None:
        return CheckLine(
            what,
            False,
            f"no result of the Account Balance query reached {shown(urls['status result'])} "
            f"within {wait_seconds:g} s: is TUKTUK_PUBLIC_URL reachable from Safaricom, and is "
            "the server running?",
        )
    if stored.kind == CallbackKind.STATUS_TIMEOUT:
        return CheckLine(what, False, "M-Pesa timed the Account Balance query out: try again")
    try:
        notice = parse_result(stored.body.encode("utf-8"))
    except CallbackRejected as exc:
        return CheckLine(what, False, f"the result cannot be read: {exc.reason}")
    if notice.result_code != "0":
        return CheckLine(what, False, f"{notice.result_code} {notice.result_desc}".strip())
    return CheckLine(
        what, True, "M-Pesa answered an Account Balance query, and the result reached us"
    )


def mpesa_check(*, wait_seconds: float = 30.0) -> list[CheckLine]:
    """Everything M-Pesa needs from us, looked at; one line each."""
    lines: list[CheckLine] = []
    missing = [env for name, env in REQUIRED_SETTINGS if not getattr(settings, name)]
    lines.extend(CheckLine("configuration", False, f"{env} is not set") for env in missing)
    if not missing:
        lines.append(CheckLine("configuration", True, f"Daraja at {settings.MPESA_BASE_URL}"))
    lines.extend(_callback_check(name, url) for name, url in callback_urls().items())
    if settings.MPESA_CONSUMER_KEY and settings.MPESA_CONSUMER_SECRET:
        oauth = _oauth_check()
        lines.append(oauth)
        if oauth.ok and not missing:
            client = daraja.DarajaClient()
            try:
                lines.append(_initiator_check(client, wait_seconds))
            finally:
                client.close()
    return lines
