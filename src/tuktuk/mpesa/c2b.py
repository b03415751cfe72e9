"""Reading Daraja C2B callback bodies. Anything we cannot trust is rejected with a reason."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from tuktuk.core.clock import mpesa_time_parse
from tuktuk.ledger.services import IncomingPayment
from tuktuk.mpesa import strict_json
from tuktuk.mpesa.strict_json import JsonNumber, shown

# Daraja validation result codes.
ACCEPTED = "0"
INVALID_ACCOUNT = "C2B00012"
INVALID_AMOUNT = "C2B00013"
OTHER_ERROR = "C2B00016"

# ASCII digits only: \d and Decimal also take "١٥٠" or fullwidth digits as 150.
_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?", re.ASCII)
_TRANS_ID = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)
# C0 control characters (code points below 32); a regex, not a loop over the characters: the
# posting engine reads a dozen fields of every confirmation.
_CONTROL = re.compile(r"[\x00-\x1f]")
# The only fields a JSON number may stand for; every other field we read must be a string.
_NUMBER_FIELDS = frozenset({"TransAmount"})
_MISSING = object()


@dataclass(frozen=True)
class CallbackRejected(Exception):
    reason: str
    code: str = OTHER_ERROR

    def __str__(self) -> str:
        return self.reason


def _form_fields(text: str) -> dict[str, Any]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        # e.g. %ED%A0%80, a surrogate encoded as if it were a character: replacing it would
        # credit something other than what was sent.
        raise CallbackRejected("a form field is not UTF-8 text once unescaped") from exc
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key in fields:  # which one would M-Pesa have meant?
            raise CallbackRejected(f"{shown(key)} appears more than once")
        fields[key] = value
    return fields


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """JSON (what Daraja sends) or form-encoded: a flat dict of what was sent, or a rejection
    for a body that could be read more than one way (a repeated key) or not stored."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CallbackRejected("body is not UTF-8 text") from exc
    if not text.strip():
        raise CallbackRejected("empty body")
    if content_type.startswith("multipart/"):
        raise CallbackRejected("multipart bodies are not accepted; send JSON or form-encoded")
    if "application/x-www-form-urlencoded" in content_type:
        return _form_fields(text)
    return json_object(text)


def json_object(text: str) -> dict[str, Any]:
    """A callback body read strictly as one JSON object (C2B and B2C alike)."""
    try:
        payload = strict_json.loads(text)
    except strict_json.JsonRejected as exc:
        raise CallbackRejected(exc.reason) from exc
    if not isinstance(payload, dict):
        raise CallbackRejected("body is not a JSON object")
    return payload


def _text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key, _MISSING)
    if value is _MISSING:
        return ""
    if isinstance(value, JsonNumber) and key in _NUMBER_FIELDS:
        text = value.literal
    elif isinstance(value, str):
        text = value.strip()
    else:
        # true, null, a number, an object or a list: str() would credit "True" or "None".
        raise CallbackRejected(f"{key} must be a string", OTHER_ERROR)
    if _CONTROL.search(text):
        raise CallbackRejected(f"{key} contains control characters", OTHER_ERROR)
    return text


def parse_amount(raw: str, *, maximum: Decimal) -> Decimal:
    if not _AMOUNT.fullmatch(raw):
        raise CallbackRejected(
            f"TransAmount {raw!r} is not a positive number with at most 2 decimals",
            INVALID_AMOUNT,
        )
    try:
        amount = Decimal(raw)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes these
        raise CallbackRejected(f"TransAmount {raw!r} is not a number", INVALID_AMOUNT) from exc
    if amount <= 0:
        raise CallbackRejected(f"TransAmount {raw!r} must be positive", INVALID_AMOUNT)
    if amount > maximum:
        raise CallbackRejected(
            f"TransAmount {raw} is above the maximum of {maximum}", INVALID_AMOUNT
        )
    return amount


def parse_trans_time(raw: str) -> dt.datetime | None:
    """TransTime is YYYYMMDDHHMMSS in Nairobi time. A bad one is not a reason to lose a fare."""
    return mpesa_time_parse(raw)


def payment_from_payload(payload: dict[str, Any], *, maximum: Decimal) -> IncomingPayment:
    trans_id = _text(payload, "TransID")
    if not trans_id:
        raise CallbackRejected("TransID is missing")
    if not _TRANS_ID.fullmatch(trans_id):
        raise CallbackRejected(f"TransID {trans_id[:80]!r} is not an M-Pesa receipt number")
    amount = parse_amount(_text(payload, "TransAmount"), maximum=maximum)
    names = [_text(payload, key) for key in ("FirstName", "MiddleName", "LastName")]
    return IncomingPayment(
        trans_id=trans_id,
        amount=amount,
        account_reference=_text(payload, "BillRefNumber"),
        # Daraja now masks or hashes MSISDN in C2B callbacks, so it is kept as given.
        payer_msisdn=_text(payload, "MSISDN"),
        payer_name=" ".join(name for name in names if name),
        mpesa_time=parse_trans_time(_text(payload, "TransTime")),
    )
