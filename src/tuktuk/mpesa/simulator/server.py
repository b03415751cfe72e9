"""The Daraja simulator: OAuth, B2C, Transaction Status, Pull Transactions (with the C2B
payments M-Pesa holds, delivered to a confirmation URL or not), C2B RegisterURL and Account
Balance, as docs/daraja-simulator.md specifies.

It is a WSGI application (SimulatorApp) served by the standard library's wsgiref with a thread
per connection, so that it needs nothing beyond what the project already installs, and can run
as `tuktuk daraja-sim` or inside a test process (`DarajaSimulator(config).start()`). Result
callbacks go out from worker threads with httpx, retried like Safaricom retries them, so a
request is never held up by its own callback (except for the `out_of_order` and `hang`
outcomes, whose whole point is the timing).

Layers, top to bottom: SimConfig (behaviour knobs), request parsing (Daraja's validation
rules), callback bodies (pure functions), DarajaService (state, outcomes, deliveries; all state
under one lock), then HTTP (routing, the WSGI application, the wsgiref server) and
DarajaSimulator (start/stop).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
import logging
import random
import re
import secrets
import socket
import socketserver
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import httpx

from tuktuk.mpesa.c2b_payload import SANDBOX_MSISDN, SANDBOX_SHORTCODE, c2b_payload

logger = logging.getLogger("tuktuk.mpesa.simulator")

OUTCOMES = (
    "ok",
    "fail",
    "refuse",
    "error",
    "hang",
    "timeout",
    "timeout_then_result",
    "duplicate_callback",
    "out_of_order",
)
# The outcomes in which the money reaches the customer.
PAID_OUTCOMES = frozenset(
    {"ok", "error", "hang", "timeout_then_result", "duplicate_callback", "out_of_order"}
)
# Outcomes drawn from the rates, stacked on [0, 1) in this order; the rest of the range is "ok".
RATED_OUTCOMES = (
    ("fail", "fail_rate"),
    ("error", "error_rate"),
    ("hang", "hang_rate"),
    ("timeout", "timeout_rate"),
    ("duplicate_callback", "duplicate_callback_rate"),
    ("out_of_order", "out_of_order_rate"),
)
B2C_COMMANDS = frozenset({"BusinessPayment", "SalaryPayment", "PromotionPayment"})

ACCEPTED_DESCRIPTION = "Accept the service request successfully."
SUCCESS_DESCRIPTION = "The service request is processed successfully."
FAILURE_CODE, FAILURE_DESCRIPTION = 2001, "The initiator information is invalid."
TIMEOUT_CODE, TIMEOUT_DESCRIPTION = 1, "The service request timed out."
NOT_FOUND_CODE, NOT_FOUND_DESCRIPTION = 1, "The transaction could not be found."

MAX_BODY_BYTES = 1024 * 1024
CALLBACK_TIMEOUT_SECONDS = 10.0
CALLBACK_THREADS = 16
SERVER_SOFTWARE = "DarajaSimulator/1.0"
# Kenya keeps East Africa Time all year, so a fixed offset is exact.
NAIROBI = dt.timezone(dt.timedelta(hours=3), "EAT")

_RECEIPT_CHARS = string.ascii_uppercase + string.digits
_TOKEN_CHARS = string.ascii_letters + string.digits
_AMOUNT_TEXT = re.compile(r"\d{1,12}(\.\d{1,2})?")
_MSISDN = re.compile(r"254[17]\d{8}")
_SHORTCODE = re.compile(r"\d{5,7}")
_TRANS_ID = re.compile(r"[A-Z0-9]{6,20}")
_NOMINATED = re.compile(r"(254|0)[17]\d{8}")

# Pull Transactions: what M-Pesa keeps, the answer codes, the time format of StartDate/EndDate.
PULL_HISTORY = dt.timedelta(hours=48)
PULL_SUCCESS = "1000"
PULL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# C2B RegisterURL: the response types Daraja takes, and the words its docs forbid in the URLs
# (in any case, anywhere in them).
C2B_RESPONSE_TYPES = ("Completed", "Cancelled")
FORBIDDEN_URL_WORDS = ("m-pesa", "mpesa", "safaricom", "exe", "exec", "cmd", "sql", "query")


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class SimConfig:
    """How the simulator behaves. Immutable: a change at run time swaps the whole object."""

    consumer_key: str = "sim-key"
    consumer_secret: str = "sim-secret"  # noqa: S105 - the documented default of a simulator
    token_ttl: int = 3599
    fail_rate: float = 0.0
    error_rate: float = 0.0
    hang_rate: float = 0.0
    timeout_rate: float = 0.0
    duplicate_callback_rate: float = 0.0
    out_of_order_rate: float = 0.0
    callback_delay_ms: int = 0
    hang_seconds: float = 30.0
    seed: int | None = None
    callback_retries: int = 3
    callback_backoff_ms: int = 500
    pull_page_size: int = 100  # rows per Pull Transactions page (Daraja's limit is undocumented)
    # The B2C initiator an Account Balance query must name ("": any is accepted); another one
    # gets result 2001, "The initiator information is invalid.", as M-Pesa answers.
    initiator_name: str = ""
    security_credential: str = ""

    def __post_init__(self) -> None:
        if not self.consumer_key or not self.consumer_secret:
            raise ValueError("consumer_key and consumer_secret must not be empty")
        for _, name in RATED_OUTCOMES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if sum(getattr(self, name) for _, name in RATED_OUTCOMES) > 1.0 + 1e-9:
            raise ValueError("the outcome rates add up to more than 1")
        _check_range("token_ttl", self.token_ttl, 1, 365 * 24 * 3600)
        _check_range("callback_delay_ms", self.callback_delay_ms, 0, 600_000)
        _check_range("hang_seconds", self.hang_seconds, 0, 3600)
        _check_range("callback_retries", self.callback_retries, 0, 20)
        _check_range("callback_backoff_ms", self.callback_backoff_ms, 0, 60_000)
        _check_range("pull_page_size", self.pull_page_size, 1, 10_000)

    def updated(self, changes: Mapping[str, Any]) -> SimConfig:
        """A copy with `changes` (JSON names, e.g. from POST /sim/config) applied and checked."""
        unknown = sorted(set(changes) - set(RUNTIME_FIELDS))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        coerced = {name: RUNTIME_FIELDS[name](name, value) for name, value in changes.items()}
        return dataclasses.replace(self, **coerced)

    def public(self) -> dict[str, Any]:
        """The settings as JSON, without the consumer secret or the security credential."""
        values = dataclasses.asdict(self)
        values.pop("consumer_secret")
        values.pop("security_credential")
        return values


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")


def _as_float(name: str, value: Any) -> float:
    # bool is an int in Python; `true` is never a rate.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValueError(f"{name} must be a number")
    try:
        number = float(value)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{name} must be a number") from exc
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number")
    return number


def _as_int(name: str, value: Any) -> int:
    number = _as_float(name, value)
    if number != int(number):
        raise ValueError(f"{name} must be a whole number")
    return int(number)


def _as_seed(name: str, value: Any) -> int | None:
    return None if value is None else _as_int(name, value)


def _as_text(name: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 4096:
        raise ValueError(f"{name} must be text")
    return value


RUNTIME_FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "fail_rate": _as_float,
    "error_rate": _as_float,
    "hang_rate": _as_float,
    "timeout_rate": _as_float,
    "duplicate_callback_rate": _as_float,
    "out_of_order_rate": _as_float,
    "callback_delay_ms": _as_int,
    "hang_seconds": _as_float,
    "token_ttl": _as_int,
    "seed": _as_seed,
    "callback_retries": _as_int,
    "callback_backoff_ms": _as_int,
    "pull_page_size": _as_int,
    "initiator_name": _as_text,
    "security_credential": _as_text,
}


# ---------------------------------------------------------------------------------------------
# Answers and errors


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


class DarajaError(Exception):
    """An error answer in Daraja's shape: {"requestId", "errorCode", "errorMessage"}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(field_name: str) -> DarajaError:
    return DarajaError(400, "400.002.02", f"Bad Request - Invalid {field_name}")


def invalid_token() -> DarajaError:
    return DarajaError(401, "404.001.03", "Invalid Access Token")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A JSON object with exact decimals; anything else is Daraja's 400 for a bad body."""
    try:
        payload = json.loads(
            body.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers malformed JSON and integers longer than Python's digit limit.
        raise DarajaError(400, "400.002.02", "Bad Request - Invalid JSON") from exc
    if not isinstance(payload, dict):
        raise DarajaError(400, "400.002.02", "Bad Request - Invalid JSON")
    return payload


# ---------------------------------------------------------------------------------------------
# Request parsing (Daraja's validation rules)


def text_field(
    payload: Mapping[str, Any], name: str, *, required: bool = True, max_length: int = 256
) -> str:
    """A field as stripped text; numbers are accepted as Daraja accepts "600984" or 600984."""
    value = payload.get(name)
    if value is None:
        text = ""
    elif isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise bad_request(name)
    else:
        text = str(value).strip()
    if required and not text:
        raise bad_request(name)
    if len(text) > max_length or any(ord(char) < 32 for char in text):
        raise bad_request(name)
    return text


def parse_amount(value: Any) -> int:
    """Whole shillings: 150, "150" and "150.00" are fine; 150.5, 0, -1 and "abc" are not."""
    if isinstance(value, bool):
        raise bad_request("Amount")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and _AMOUNT_TEXT.fullmatch(value.strip()):
        number = Decimal(value.strip())
    else:
        raise bad_request("Amount")
    if not number.is_finite() or number <= 0 or number >= 10**12:
        raise bad_request("Amount")
    if number != number.to_integral_value():
        raise bad_request("Amount")
    return int(number)


def callback_url(payload: Mapping[str, Any], name: str) -> str:
    url = text_field(payload, name, max_length=2048)
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise bad_request(name)
    return url


@dataclass(frozen=True)
class B2CRequest:
    originator_conversation_id: str  # "" on v1 when the caller left it out; one is then made
    amount: int
    party_a: str
    party_b: str
    remarks: str
    occasion: str
    result_url: str
    queue_timeout_url: str


def parse_b2c(payload: Mapping[str, Any], *, version: str) -> B2CRequest:
    # v1 predates OriginatorConversationID in the request: Daraja made one up. v3 requires it.
    ocid = text_field(payload, "OriginatorConversationID", required=version == "v3")
    text_field(payload, "InitiatorName", max_length=128)
    text_field(payload, "SecurityCredential", max_length=4096)
    if text_field(payload, "CommandID") not in B2C_COMMANDS:
        raise bad_request("CommandID")
    if "Amount" not in payload:
        raise bad_request("Amount")
    amount = parse_amount(payload["Amount"])
    party_a = text_field(payload, "PartyA")
    if not _SHORTCODE.fullmatch(party_a):
        raise bad_request("PartyA")
    party_b = text_field(payload, "PartyB")
    if not _MSISDN.fullmatch(party_b):
        raise bad_request("PartyB")
    return B2CRequest(
        originator_conversation_id=ocid,
        amount=amount,
        party_a=party_a,
        party_b=party_b,
        remarks=text_field(payload, "Remarks", max_length=100),
        occasion=text_field(payload, "Occasion", required=False, max_length=100),
        result_url=callback_url(payload, "ResultURL"),
        queue_timeout_url=callback_url(payload, "QueueTimeOutURL"),
    )


@dataclass(frozen=True)
class StatusQuery:
    transaction_id: str
    originator_conversation_id: str
    party_a: str
    occasion: str
    result_url: str


def parse_status_query(payload: Mapping[str, Any]) -> StatusQuery:
    text_field(payload, "Initiator", max_length=128)
    text_field(payload, "SecurityCredential", max_length=4096)
    if text_field(payload, "CommandID") != "TransactionStatusQuery":
        raise bad_request("CommandID")
    if text_field(payload, "IdentifierType") not in {"1", "2", "4"}:
        raise bad_request("IdentifierType")
    transaction_id = text_field(payload, "TransactionID", required=False, max_length=64)
    ocid = text_field(payload, "OriginatorConversationID", required=False)
    if not transaction_id and not ocid:
        raise bad_request("TransactionID")
    callback_url(payload, "QueueTimeOutURL")
    return StatusQuery(
        transaction_id=transaction_id,
        originator_conversation_id=ocid,
        party_a=text_field(payload, "PartyA"),
        occasion=text_field(payload, "Occasion", required=False, max_length=100),
        result_url=callback_url(payload, "ResultURL"),
    )


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    key, sep, secret = decoded.partition(":")
    return (key, secret) if sep else None


def c2b_url(payload: Mapping[str, Any], name: str) -> str:
    """A C2B callback URL as Daraja's RegisterURL takes it: http(s), none of the words its docs
    forbid."""
    url = callback_url(payload, name)
    if any(word in url.lower() for word in FORBIDDEN_URL_WORDS):
        raise bad_request(name)
    return url


def parse_c2b_register(payload: Mapping[str, Any]) -> dict[str, str]:
    short_code = text_field(payload, "ShortCode")
    if not _SHORTCODE.fullmatch(short_code):
        raise bad_request("ShortCode")
    response_type = text_field(payload, "ResponseType", max_length=16)
    if response_type not in C2B_RESPONSE_TYPES:
        raise bad_request("ResponseType")
    return {
        "short_code": short_code,
        "response_type": response_type,
        "confirmation_url": c2b_url(payload, "ConfirmationURL"),
        "validation_url": c2b_url(payload, "ValidationURL"),
    }


@dataclass(frozen=True)
class BalanceQuery:
    initiator: str
    security_credential: str
    party_a: str
    result_url: str
    queue_timeout_url: str


def parse_balance_query(payload: Mapping[str, Any]) -> BalanceQuery:
    initiator = text_field(payload, "Initiator", max_length=128)
    credential = text_field(payload, "SecurityCredential", max_length=4096)
    if text_field(payload, "CommandID") != "AccountBalance":
        raise bad_request("CommandID")
    party_a = text_field(payload, "PartyA")
    if not _SHORTCODE.fullmatch(party_a):
        raise bad_request("PartyA")
    if text_field(payload, "IdentifierType") not in {"1", "2", "4"}:
        raise bad_request("IdentifierType")
    text_field(payload, "Remarks", required=False, max_length=100)
    return BalanceQuery(
        initiator=initiator,
        security_credential=credential,
        party_a=party_a,
        result_url=callback_url(payload, "ResultURL"),
        queue_timeout_url=callback_url(payload, "QueueTimeOutURL"),
    )


@dataclass(frozen=True)
class PullQuery:
    short_code: str
    start: dt.datetime
    end: dt.datetime
    offset: int


def _pull_time(payload: Mapping[str, Any], name: str) -> dt.datetime:
    try:
        naive = dt.datetime.strptime(text_field(payload, name, max_length=32), PULL_TIME_FORMAT)
    except ValueError:
        raise bad_request(name) from None
    return naive.replace(tzinfo=NAIROBI)


def parse_pull_query(payload: Mapping[str, Any]) -> PullQuery:
    short_code = text_field(payload, "ShortCode")
    if not _SHORTCODE.fullmatch(short_code):
        raise bad_request("ShortCode")
    start, end = _pull_time(payload, "StartDate"), _pull_time(payload, "EndDate")
    if end < start:
        raise bad_request("EndDate")
    offset_text = text_field(payload, "OffSetValue", required=False, max_length=12) or "0"
    if not offset_text.isdigit():
        raise bad_request("OffSetValue")
    return PullQuery(short_code=short_code, start=start, end=end, offset=int(offset_text))


def parse_pull_register(payload: Mapping[str, Any]) -> dict[str, str]:
    short_code = text_field(payload, "ShortCode")
    if not _SHORTCODE.fullmatch(short_code):
        raise bad_request("ShortCode")
    request_type = text_field(payload, "RequestType", max_length=32)
    nominated = text_field(payload, "NominatedNumber", max_length=16)
    if not _NOMINATED.fullmatch(nominated):
        raise bad_request("NominatedNumber")
    return {
        "short_code": short_code,
        "request_type": request_type,
        "nominated_number": nominated,
        "callback_url": callback_url(payload, "CallBackURL"),
    }


# ---------------------------------------------------------------------------------------------
# State records


@dataclass
class Payment:
    """A B2C request Daraja accepted: money moved (`paid`) or it did not."""

    originator_conversation_id: str
    conversation_id: str
    amount: int
    party_a: str
    party_b: str
    outcome: str
    paid: bool
    transaction_id: str  # the receipt when paid; Daraja gives failures an id as well
    result_code: int
    result_description: str
    initiated_at: dt.datetime
    completed_at: dt.datetime

    @property
    def receipt(self) -> str | None:
        return self.transaction_id if self.paid else None

    def as_json(self) -> dict[str, Any]:
        return {
            "amount": self.amount,
            "receipt": self.receipt,
            "party_b": self.party_b,
            "paid": self.paid,
            "conversation_id": self.conversation_id,
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class C2BPayment:
    """A customer's paybill payment M-Pesa took: listed by Pull Transactions for 48 hours,
    found by the status query, and delivered to a confirmation URL only if one was given."""

    trans_id: str
    amount: Decimal
    account: str
    msisdn: str
    when: dt.datetime
    short_code: str
    first_name: str
    last_name: str
    delivered_to: str  # the confirmation URL it was POSTed to; "" when never delivered
    pull_row: Mapping[str, Any]  # fields replaced in its Pull Transactions row (bad rows)

    def confirmation(self) -> dict[str, str]:
        return c2b_payload(
            trans_id=self.trans_id,
            amount=self.amount,
            account=self.account,
            msisdn=self.msisdn,
            when=self.when,
            first_name=self.first_name,
            last_name=self.last_name,
            shortcode=self.short_code,
        )

    def row(self) -> dict[str, Any]:
        """Its row in the Pull Transactions answer, shaped like Daraja's sample."""
        whole = self.amount == self.amount.to_integral_value()
        row: dict[str, Any] = {
            "transactionId": self.trans_id,
            # Kenyan wall-clock time, written like the sample ("2020-08-05T10:13:00Z").
            "trxDate": self.when.astimezone(NAIROBI).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "msisdn": int(self.msisdn) if self.msisdn.isdigit() else self.msisdn,
            "sender": f"{self.first_name} {self.last_name}".strip(),
            "transactiontype": "c2b-pay-bill-debit",
            "billreference": self.account,
            "amount": str(int(self.amount)) if whole else f"{self.amount:f}",
            "organizationname": f"{self.short_code} - Sim Business",
        }
        row.update(self.pull_row)
        return row

    def as_json(self) -> dict[str, Any]:
        return {
            "trans_id": self.trans_id,
            "amount": str(self.amount),
            "account": self.account,
            "time": self.when.astimezone(NAIROBI).isoformat(),
            "delivered_to": self.delivered_to,
        }


def _payment_time(value: Any, now: dt.datetime) -> dt.datetime:
    if value is None or value == "":
        return now
    text = str(value).strip()
    try:
        if text.isdigit():
            return dt.datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise bad_request("time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=NAIROBI)


def parse_c2b_payment(
    item: Any, *, trans_id: str, now: dt.datetime, delivered_to: str
) -> C2BPayment:
    if not isinstance(item, dict):
        raise bad_request("payments")
    amount_text = text_field(item, "amount", max_length=16)
    if not _AMOUNT_TEXT.fullmatch(amount_text) or Decimal(amount_text) <= 0:
        raise bad_request("amount")
    pull_row = item.get("pull_row") or {}
    if not isinstance(pull_row, dict):
        raise bad_request("pull_row")
    return C2BPayment(
        trans_id=trans_id,
        amount=Decimal(amount_text),
        account=text_field(item, "account", max_length=64),
        msisdn=text_field(item, "msisdn", required=False, max_length=64) or SANDBOX_MSISDN,
        when=_payment_time(item.get("time"), now),
        short_code=text_field(item, "short_code", required=False) or SANDBOX_SHORTCODE,
        first_name=text_field(item, "first_name", required=False, max_length=64) or "John",
        last_name=text_field(item, "last_name", required=False, max_length=64) or "Doe",
        delivered_to=delivered_to,
        pull_row=dict(pull_row),
    )


@dataclass(frozen=True)
class Outbound:
    """One callback to POST: a B2C result, a queue-timeout notice or a status result."""

    kind: str  # "result", "timeout" or "status"
    url: str
    body: dict[str, Any]
    originator_conversation_id: str


@dataclass(frozen=True)
class DeliveryPlan:
    """Callbacks POSTed one after the other, in order, after `delay` seconds."""

    callbacks: tuple[Outbound, ...]
    delay: float
    retries: int
    backoff: float
    generation: int  # deliveries of a plan from before a /sim/reset are not recorded


@dataclass
class SimState:
    b2c_requests: list[dict[str, Any]] = field(default_factory=list)
    payments: dict[str, Payment] = field(default_factory=dict)
    receipts: set[str] = field(default_factory=set)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (clock seconds)
    tokens_issued: int = 0
    callbacks_sent: list[dict[str, Any]] = field(default_factory=list)
    status_queries: list[dict[str, Any]] = field(default_factory=list)
    script: deque[str] = field(default_factory=deque)
    # C2B receipts M-Pesa holds (customer payments to the paybill), for status queries about
    # payments our webhook never received.
    c2b_receipts: dict[str, Decimal] = field(default_factory=dict)
    # Customer payments with their details, listed by Pull Transactions (by TransID).
    c2b_payments: dict[str, C2BPayment] = field(default_factory=dict)
    pull_registrations: dict[str, dict[str, str]] = field(default_factory=dict)
    pull_queries: list[dict[str, Any]] = field(default_factory=list)
    # C2B RegisterURL, by shortcode (the last registration wins, as in the sandbox).
    c2b_registrations: dict[str, dict[str, str]] = field(default_factory=dict)
    balance_queries: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Callback bodies


def _completed_time(moment: dt.datetime) -> str:
    return moment.astimezone(NAIROBI).strftime("%d.%m.%Y %H:%M:%S")


def _compact_time(moment: dt.datetime) -> int:
    return int(moment.astimezone(NAIROBI).strftime("%Y%m%d%H%M%S"))


def _parameters(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {"ResultParameter": [{"Key": key, "Value": value} for key, value in pairs]}


def result_envelope(
    *,
    code: int,
    description: str,
    originator_conversation_id: str,
    conversation_id: str,
    transaction_id: str,
    reference: tuple[str, str],
    parameters: list[tuple[str, Any]] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": description,
        "OriginatorConversationID": originator_conversation_id,
        "ConversationID": conversation_id,
        "TransactionID": transaction_id,
    }
    if parameters is not None:
        result["ResultParameters"] = _parameters(parameters)
    result["ReferenceData"] = {"ReferenceItem": {"Key": reference[0], "Value": reference[1]}}
    return {"Result": result}


def b2c_success_body(payment: Payment, request: B2CRequest) -> dict[str, Any]:
    return result_envelope(
        code=0,
        description=SUCCESS_DESCRIPTION,
        originator_conversation_id=payment.originator_conversation_id,
        conversation_id=payment.conversation_id,
        transaction_id=payment.transaction_id,
        reference=("QueueTimeoutURL", request.queue_timeout_url),
        parameters=[
            ("TransactionAmount", payment.amount),
            ("TransactionReceipt", payment.transaction_id),
            ("ReceiverPartyPublicName", f"{payment.party_b} - Sim Customer"),
            ("TransactionCompletedDateTime", _completed_time(payment.completed_at)),
            ("B2CUtilityAccountAvailableFunds", 100000.00),
            ("B2CWorkingAccountAvailableFunds", 100000.00),
            ("B2CRecipientIsRegisteredCustomer", "Y"),
            ("B2CChargesPaidAccountAvailableFunds", 0.00),
        ],
    )


def b2c_notice_body(
    payment: Payment, request: B2CRequest, *, code: int, description: str
) -> dict[str, Any]:
    """A failure result or a queue-timeout notice: the envelope without ResultParameters."""
    return result_envelope(
        code=code,
        description=description,
        originator_conversation_id=payment.originator_conversation_id,
        conversation_id=payment.conversation_id,
        transaction_id=payment.transaction_id,
        reference=("QueueTimeoutURL", request.queue_timeout_url),
    )


def b2c_callbacks(payment: Payment, request: B2CRequest) -> tuple[Outbound, ...]:
    """What Daraja POSTs back for each outcome (see the table in the contract)."""
    ocid = payment.originator_conversation_id
    success = Outbound("result", request.result_url, b2c_success_body(payment, request), ocid)
    failure = Outbound(
        "result",
        request.result_url,
        b2c_notice_body(payment, request, code=FAILURE_CODE, description=FAILURE_DESCRIPTION),
        ocid,
    )
    timeout = Outbound(
        "timeout",
        request.queue_timeout_url,
        b2c_notice_body(payment, request, code=TIMEOUT_CODE, description=TIMEOUT_DESCRIPTION),
        ocid,
    )
    by_outcome = {
        "fail": (failure,),
        "timeout": (timeout,),
        "timeout_then_result": (timeout, success),
        "duplicate_callback": (success, success),
    }
    return by_outcome.get(payment.outcome, (success,))


def status_result_body(
    *, query: StatusQuery, payment: Payment | None, ocid: str, conversation_id: str
) -> dict[str, Any]:
    reference = ("Occasion", query.occasion)
    placeholder_id = "SIM0000000"  # Daraja puts a zero-filled id here, not the receipt
    if payment is None:
        return result_envelope(
            code=NOT_FOUND_CODE,
            description=NOT_FOUND_DESCRIPTION,
            originator_conversation_id=ocid,
            conversation_id=conversation_id,
            transaction_id=placeholder_id,
            reference=reference,
            parameters=[("OriginatorConversationID", query.originator_conversation_id)],
        )
    if payment.paid:
        status, reason = "Completed", "Business Payment to Customer via API"
    else:
        status, reason = "Failed", payment.result_description
    return result_envelope(
        code=0,
        description=SUCCESS_DESCRIPTION,
        originator_conversation_id=ocid,
        conversation_id=conversation_id,
        transaction_id=placeholder_id,
        reference=reference,
        parameters=[
            ("DebitPartyName", f"{payment.party_a} - Sim Business"),
            ("CreditPartyName", f"{payment.party_b} - Sim Customer"),
            ("OriginatorConversationID", payment.originator_conversation_id),
            ("InitiatedTime", _compact_time(payment.initiated_at)),
            ("DebitAccountType", "Utility Account"),
            ("DebitPartyCharges", ""),
            ("ReasonType", reason),
            ("TransactionStatus", status),
            ("FinalisedTime", _compact_time(payment.completed_at)),
            ("Amount", payment.amount),
            ("ConversationID", payment.conversation_id),
            ("ReceiptNo", payment.transaction_id),
        ],
    )


def c2b_status_body(
    *, query: StatusQuery, amount: Decimal, ocid: str, conversation_id: str
) -> dict[str, Any]:
    """A customer's paybill payment, as the status query reports it."""
    return result_envelope(
        code=0,
        description=SUCCESS_DESCRIPTION,
        originator_conversation_id=ocid,
        conversation_id=conversation_id,
        transaction_id=query.transaction_id,
        reference=("Occasion", query.occasion),
        parameters=[
            ("ReceiptNo", query.transaction_id),
            ("TransactionStatus", "Completed"),
            ("ReasonType", "Pay Bill Online"),
            # Whole shillings as a JSON number, as Daraja sends them; cents as an exact string.
            ("Amount", int(amount) if amount == amount.to_integral_value() else str(amount)),
            ("CreditPartyName", f"{query.party_a} - Sim Business"),
        ],
    )


# ---------------------------------------------------------------------------------------------
# The service


@dataclass(frozen=True)
class _Accepted:
    payment: Payment
    plan: DeliveryPlan
    hang_seconds: float


class DarajaService:
    """Daraja's behaviour and the simulator's state, independent of HTTP. Thread-safe."""

    def __init__(
        self,
        config: SimConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(NAIROBI),
    ) -> None:
        self._initial_config = config
        self._config = config
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._generation = 0
        self._stopping = threading.Event()
        self._rng = random.Random(config.seed)  # noqa: S311 - reproducible, not secret
        self._state = SimState()
        # Callbacks go to loopback or staging hosts: no proxy from the environment.
        self._http = httpx.Client(timeout=CALLBACK_TIMEOUT_SECONDS, trust_env=False)
        self._pool = ThreadPoolExecutor(CALLBACK_THREADS, thread_name_prefix="daraja-callback")

    # -- Daraja endpoints ---------------------------------------------------------------------

    def oauth(self, authorization: str | None, query: Mapping[str, list[str]]) -> Reply:
        if query.get("grant_type") != ["client_credentials"]:
            raise DarajaError(400, "400.008.02", "Invalid grant type passed")
        credentials = parse_basic_auth(authorization)
        with self._lock:
            config = self._config
            if credentials is None or not (
                secrets.compare_digest(credentials[0], config.consumer_key)
                and secrets.compare_digest(credentials[1], config.consumer_secret)
            ):
                raise DarajaError(400, "400.008.01", "Invalid Authentication passed")
            now = self._clock()
            tokens = self._state.tokens
            for stale in [token for token, expiry in tokens.items() if expiry <= now]:
                del tokens[stale]
            token = "".join(self._rng.choice(_TOKEN_CHARS) for _ in range(28))
            tokens[token] = now + config.token_ttl
            self._state.tokens_issued += 1
        return Reply(200, {"access_token": token, "expires_in": str(config.token_ttl)})

    def b2c(self, authorization: str | None, body: bytes, *, version: str) -> Reply:
        self._authorize(authorization)
        payload: dict[str, Any] = {}
        try:
            payload = parse_json_object(body)
            request = parse_b2c(payload, version=version)
        except DarajaError as exc:
            self._record_b2c(payload, outcome="invalid", http_status=exc.status)
            raise
        accepted = self._accept_b2c(request)
        return self._answer_b2c(accepted)

    def transaction_status(self, authorization: str | None, body: bytes) -> Reply:
        self._authorize(authorization)
        query = parse_status_query(parse_json_object(body))
        with self._lock:
            ocid = self._new_originator_id()
            conversation_id = self._new_conversation_id()
            payment = self._find_payment(query)
            c2b_amount = self._state.c2b_receipts.get(query.transaction_id)
            if payment is None and c2b_amount is not None:
                result = c2b_status_body(
                    query=query, amount=c2b_amount, ocid=ocid, conversation_id=conversation_id
                )
            else:
                result = status_result_body(
                    query=query, payment=payment, ocid=ocid, conversation_id=conversation_id
                )
            self._state.status_queries.append(
                {
                    "originator_conversation_id": ocid,
                    "checked_originator_conversation_id": query.originator_conversation_id,
                    "transaction_id": query.transaction_id,
                    "found": payment is not None or c2b_amount is not None,
                    "result_code": result["Result"]["ResultCode"],
                }
            )
            checked = query.originator_conversation_id or query.transaction_id
            plan = self._plan((Outbound("status", query.result_url, result, checked),))
        self._submit(plan)
        return Reply(
            200,
            {
                "OriginatorConversationID": ocid,
                "ConversationID": conversation_id,
                "ResponseCode": "0",
                "ResponseDescription": ACCEPTED_DESCRIPTION,
            },
        )

    def error_reply(self, error: DarajaError) -> Reply:
        with self._lock:
            request_id = self._new_originator_id()
        body = {"requestId": request_id, "errorCode": error.code, "errorMessage": error.message}
        return Reply(error.status, body)

    # -- Controls -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self._lock:
            state = self._state
            return {
                "b2c_requests": [dict(item) for item in state.b2c_requests],
                "payments": {ocid: p.as_json() for ocid, p in state.payments.items()},
                "tokens_issued": state.tokens_issued,
                "callbacks_sent": [dict(item) for item in state.callbacks_sent],
                "callbacks_pending": self._pending,
                "status_queries": [dict(item) for item in state.status_queries],
                "script": list(state.script),
                "c2b_payments": [p.as_json() for p in state.c2b_payments.values()],
                "pull_registrations": {k: dict(v) for k, v in state.pull_registrations.items()},
                "pull_queries": [dict(item) for item in state.pull_queries],
                "c2b_registrations": {k: dict(v) for k, v in state.c2b_registrations.items()},
                "balance_queries": [dict(item) for item in state.balance_queries],
            }

    def config(self) -> dict[str, Any]:
        with self._lock:
            return self._config.public()

    def configure(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            try:
                self._config = self._config.updated(changes)
            except (ValueError, TypeError) as exc:
                raise DarajaError(400, "400.002.02", f"Bad Request - {exc}") from exc
            if "seed" in changes:
                self._rng.seed(self._config.seed)
            return self._config.public()

    def script(self, outcomes: Any = None) -> dict[str, Any]:
        """Replace the forced outcomes of the next B2C requests (None: only read them)."""
        with self._lock:
            if outcomes is not None:
                if not isinstance(outcomes, list) or len(outcomes) > 100_000:
                    raise bad_request("outcomes")
                unknown = [o for o in outcomes if not isinstance(o, str) or o not in OUTCOMES]
                if unknown:
                    raise DarajaError(
                        400, "400.002.02", f"Bad Request - unknown outcome(s) {unknown[:5]!r}"
                    )
                self._state.script = deque(outcomes)
            return {"outcomes": list(self._state.script)}

    def reset(self) -> dict[str, Any]:
        """Back to just started: state, tokens, script and config (the start-up one) cleared."""
        with self._lock:
            self._state = SimState()
            self._config = self._initial_config
            self._rng.seed(self._config.seed)
            self._generation += 1
        return {"reset": True}

    def add_c2b_receipts(self, receipts: Mapping[str, Any]) -> dict[str, Any]:
        """Customer payments M-Pesa knows about (receipt -> amount), e.g. ones whose C2B
        confirmation never reached the merchant."""
        parsed = {str(k).strip().upper(): Decimal(str(v)) for k, v in receipts.items()}
        with self._lock:
            self._state.c2b_receipts.update(parsed)
            return {"c2b_receipts": len(self._state.c2b_receipts)}

    def add_c2b_payments(self, payments: Any, confirmation_url: Any = None) -> dict[str, Any]:
        """Customer paybill payments M-Pesa took. With `confirmation_url`, each confirmation is
        POSTed there (as Daraja does to the registered URL); without, it never is: the payment
        our webhook missed, which only Pull Transactions (or a status query) will show."""
        if not isinstance(payments, list) or not 1 <= len(payments) <= 10_000:
            raise bad_request("payments")
        url = ""
        registered = confirmation_url == "registered"
        if confirmation_url not in (None, "") and not registered:
            url = callback_url({"confirmation_url": confirmation_url}, "confirmation_url")
        added: list[C2BPayment] = []
        with self._lock:
            now = self._wall_clock()
            for item in payments:
                wanted = item.get("trans_id") if isinstance(item, dict) else None
                trans_id = str(wanted).strip().upper() if wanted else self._new_receipt()
                taken = self._state.c2b_payments.keys() | {p.trans_id for p in added}
                if not _TRANS_ID.fullmatch(trans_id) or trans_id in taken:
                    raise bad_request("trans_id")
                payment = parse_c2b_payment(item, trans_id=trans_id, now=now, delivered_to=url)
                if registered:
                    # Delivered where the shortcode's C2B URLs were registered, as Daraja does.
                    registration = self._state.c2b_registrations.get(payment.short_code)
                    if registration is None:
                        raise DarajaError(
                            400,
                            "400.002.02",
                            f"Bad Request - ShortCode {payment.short_code} has no C2B URLs "
                            "registered",
                        )
                    payment = dataclasses.replace(
                        payment, delivered_to=registration["confirmation_url"]
                    )
                added.append(payment)
            # All or nothing: the batch is checked before any of it is kept.
            for payment in added:
                self._state.receipts.add(payment.trans_id)
                self._state.c2b_payments[payment.trans_id] = payment
                self._state.c2b_receipts[payment.trans_id] = payment.amount
            plans = [
                self._plan(
                    (
                        Outbound(
                            "c2b_confirmation",
                            payment.delivered_to,
                            payment.confirmation(),
                            payment.trans_id,
                        ),
                    )
                )
                for payment in added
                if payment.delivered_to
            ]
        for plan in plans:
            self._submit(plan)
        return {"payments": [payment.as_json() for payment in added]}

    def c2b_register(self, authorization: str | None, body: bytes) -> Reply:
        """C2B RegisterURL: where the shortcode's validation and confirmation requests go."""
        self._authorize(authorization)
        registration = parse_c2b_register(parse_json_object(body))
        with self._lock:
            self._state.c2b_registrations[registration["short_code"]] = registration
            reference = self._new_originator_id()
        # Daraja's answer spells it "OriginatorCoversationID".
        return Reply(
            200,
            {
                "OriginatorCoversationID": reference,
                "ResponseCode": "0",
                "ResponseDescription": "Success",
            },
        )

    def account_balance(self, authorization: str | None, body: bytes) -> Reply:
        """Account Balance: accepted at once; the result (the balances, or 2001 when the
        initiator is not the configured one) is POSTed to ResultURL."""
        self._authorize(authorization)
        query = parse_balance_query(parse_json_object(body))
        with self._lock:
            config = self._config
            valid = (not config.initiator_name or query.initiator == config.initiator_name) and (
                not config.security_credential
                or secrets.compare_digest(query.security_credential, config.security_credential)
            )
            ocid = self._new_originator_id()
            conversation_id = self._new_conversation_id()
            receipt = self._new_receipt()
            reference = ("QueueTimeoutURL", query.queue_timeout_url)
            if valid:
                result = result_envelope(
                    code=0,
                    description=SUCCESS_DESCRIPTION,
                    originator_conversation_id=ocid,
                    conversation_id=conversation_id,
                    transaction_id=receipt,
                    reference=reference,
                    parameters=[
                        (
                            "AccountBalance",
                            "Working Account|KES|100000.00|100000.00|0.00|0.00"
                            "&Utility Account|KES|100000.00|100000.00|0.00|0.00",
                        ),
                        ("BOCompletedTime", _compact_time(self._wall_clock())),
                    ],
                )
            else:
                result = result_envelope(
                    code=FAILURE_CODE,
                    description=FAILURE_DESCRIPTION,
                    originator_conversation_id=ocid,
                    conversation_id=conversation_id,
                    transaction_id=receipt,
                    reference=reference,
                )
            self._state.balance_queries.append(
                {
                    "originator_conversation_id": ocid,
                    "initiator": query.initiator,
                    "party_a": query.party_a,
                    "result_code": result["Result"]["ResultCode"],
                }
            )
            plan = self._plan((Outbound("result", query.result_url, result, ocid),))
        self._submit(plan)
        return Reply(
            200,
            {
                "OriginatorConversationID": ocid,
                "ConversationID": conversation_id,
                "ResponseCode": "0",
                "ResponseDescription": ACCEPTED_DESCRIPTION,
            },
        )

    def pull_register(self, authorization: str | None, body: bytes) -> Reply:
        self._authorize(authorization)
        registration = parse_pull_register(parse_json_object(body))
        with self._lock:
            self._state.pull_registrations[registration["short_code"]] = registration
            reference = self._new_originator_id()
        return Reply(
            200,
            {
                "ResponseRefID": reference,
                "ResponseStatus": PULL_SUCCESS,
                "ShortCode": registration["short_code"],
                "ResponseDescription": "Shortcode Registered Successfully",
            },
        )

    def pull_query(self, authorization: str | None, body: bytes) -> Reply:
        self._authorize(authorization)
        query = parse_pull_query(parse_json_object(body))
        with self._lock:
            now = self._wall_clock()
            if query.short_code not in self._state.pull_registrations:
                raise DarajaError(
                    400,
                    "400.002.02",
                    f"Bad Request - ShortCode {query.short_code} is not registered for Pull",
                )
            if query.start < now - PULL_HISTORY:
                raise DarajaError(
                    400, "400.002.02", "Bad Request - StartDate is more than 48 hours ago"
                )
            listed = sorted(
                (
                    p
                    for p in self._state.c2b_payments.values()
                    if p.short_code == query.short_code
                    and query.start <= p.when <= query.end
                    and p.when >= now - PULL_HISTORY
                ),
                key=lambda p: (p.when, p.trans_id),
            )
            page = listed[query.offset : query.offset + self._config.pull_page_size]
            self._state.pull_queries.append(
                {
                    "start": query.start.isoformat(),
                    "end": query.end.isoformat(),
                    "offset": query.offset,
                    "returned": len(page),
                }
            )
            reference = self._new_originator_id()
        return Reply(
            200,
            {
                "ResponseRefID": reference,
                "ResponseCode": PULL_SUCCESS,
                "ResponseMessage": "Success",
                # Nested in a list of lists, as in Daraja's sample answer.
                "Response": [[payment.row() for payment in page]],
            },
        )

    def expire_tokens(self) -> dict[str, Any]:
        with self._lock:
            expired = len(self._state.tokens)
            self._state.tokens = dict.fromkeys(self._state.tokens, float("-inf"))
        return {"expired": expired}

    def wait_for_callbacks(self, timeout: float) -> bool:
        """True once no callback is waiting or being delivered (retries included)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def begin_stop(self) -> None:
        """Release hanging requests and retry back-offs at once."""
        self._stopping.set()

    def close(self) -> None:
        self.begin_stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    # -- B2C internals ------------------------------------------------------------------------

    def _authorize(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        with self._lock:
            expiry = self._state.tokens.get(token.strip()) if scheme == "Bearer" else None
            if expiry is None or expiry <= self._clock():
                raise invalid_token()

    def _accept_b2c(self, request: B2CRequest) -> _Accepted:
        """Check for a reused id and decide the outcome, atomically (concurrent retries race)."""
        with self._lock:
            ocid = request.originator_conversation_id or self._new_originator_id()
            request = dataclasses.replace(request, originator_conversation_id=ocid)
            if ocid in self._state.payments:
                self._record_b2c_locked(request, outcome="duplicate", http_status=500)
                raise DarajaError(500, "500.002.1001", "Duplicate OriginatorConversationID")
            outcome = self._next_outcome()
            if outcome == "refuse":
                self._record_b2c_locked(request, outcome=outcome, http_status=400)
                raise bad_request("PartyB")
            payment = self._new_payment(request, outcome)
            self._state.payments[ocid] = payment
            self._record_b2c_locked(
                request,
                outcome=outcome,
                http_status=500 if outcome == "error" else 200,
                payment=payment,
            )
            plan = self._plan(b2c_callbacks(payment, request))
            hang_seconds = self._config.hang_seconds
        logger.info("B2C %s KES %s to %s: %s", ocid, request.amount, request.party_b, outcome)
        return _Accepted(payment=payment, plan=plan, hang_seconds=hang_seconds)

    def _answer_b2c(self, accepted: _Accepted) -> Reply:
        payment = accepted.payment
        ack = Reply(
            200,
            {
                "ConversationID": payment.conversation_id,
                "OriginatorConversationID": payment.originator_conversation_id,
                "ResponseCode": "0",
                "ResponseDescription": ACCEPTED_DESCRIPTION,
            },
        )
        if payment.outcome == "out_of_order":
            # The result reaches the caller before the answer to its own request does.
            self._run_counted(accepted.plan)
            return ack
        self._submit(accepted.plan)
        if payment.outcome == "hang":
            # The result callback goes out meanwhile; the HTTP answer is held back.
            self._stopping.wait(accepted.hang_seconds)
        if payment.outcome == "error":
            raise DarajaError(500, "500.001.1001", "Internal Server Error")
        return ack

    def _next_outcome(self) -> str:
        if self._state.script:
            return self._state.script.popleft()  # forced outcomes take precedence over rates
        draw = self._rng.random()
        threshold = 0.0
        for outcome, rate_name in RATED_OUTCOMES:
            threshold += getattr(self._config, rate_name)
            if draw < threshold:
                return outcome
        return "ok"

    def _new_payment(self, request: B2CRequest, outcome: str) -> Payment:
        paid = outcome in PAID_OUTCOMES
        if paid:
            code, description = 0, SUCCESS_DESCRIPTION
        elif outcome == "timeout":
            code, description = TIMEOUT_CODE, TIMEOUT_DESCRIPTION
        else:
            code, description = FAILURE_CODE, FAILURE_DESCRIPTION
        now = self._wall_clock()
        return Payment(
            originator_conversation_id=request.originator_conversation_id,
            conversation_id=self._new_conversation_id(),
            amount=request.amount,
            party_a=request.party_a,
            party_b=request.party_b,
            outcome=outcome,
            paid=paid,
            transaction_id=self._new_receipt(),
            result_code=code,
            result_description=description,
            initiated_at=now,
            completed_at=now,
        )

    def _record_b2c(self, payload: Mapping[str, Any], *, outcome: str, http_status: int) -> None:
        """Record a request refused before it was parsed, with whatever could be read of it."""

        def loose(name: str) -> str | None:
            value = payload.get(name)
            return str(value)[:128] if isinstance(value, str | int) else None

        with self._lock:
            self._state.b2c_requests.append(
                {
                    "originator_conversation_id": loose("OriginatorConversationID"),
                    "amount": None,
                    "party_b": loose("PartyB"),
                    "outcome": outcome,
                    "accepted": False,
                    "conversation_id": None,
                    "receipt": None,
                    "http_status": http_status,
                }
            )

    def _record_b2c_locked(
        self,
        request: B2CRequest,
        *,
        outcome: str,
        http_status: int,
        payment: Payment | None = None,
    ) -> None:
        self._state.b2c_requests.append(
            {
                "originator_conversation_id": request.originator_conversation_id,
                "amount": request.amount,
                "party_b": request.party_b,
                "outcome": outcome,
                "accepted": payment is not None,
                "conversation_id": payment.conversation_id if payment else None,
                "receipt": payment.receipt if payment else None,
                "http_status": http_status,
            }
        )

    def _find_payment(self, query: StatusQuery) -> Payment | None:
        payments = self._state.payments
        if query.originator_conversation_id in payments:
            return payments[query.originator_conversation_id]
        if query.transaction_id:
            for payment in payments.values():
                if payment.transaction_id == query.transaction_id:
                    return payment
        return None

    # -- Identifiers (callers hold the lock: the generator is shared) --------------------------

    def _new_receipt(self) -> str:
        while True:
            receipt = "SIM" + "".join(self._rng.choice(_RECEIPT_CHARS) for _ in range(7))
            if receipt not in self._state.receipts:
                self._state.receipts.add(receipt)
                return receipt

    def _new_conversation_id(self) -> str:
        day = self._wall_clock().strftime("%Y%m%d")
        return f"AG_{day}_{self._rng.getrandbits(80):020x}"

    def _new_originator_id(self) -> str:
        return f"{self._rng.randint(10000, 99999)}-{self._rng.randint(10**7, 10**8 - 1)}-1"

    # -- Callback delivery --------------------------------------------------------------------

    def _plan(self, callbacks: tuple[Outbound, ...]) -> DeliveryPlan:
        config = self._config
        return DeliveryPlan(
            callbacks=callbacks,
            delay=config.callback_delay_ms / 1000,
            retries=config.callback_retries,
            backoff=config.callback_backoff_ms / 1000,
            generation=self._generation,
        )

    def _submit(self, plan: DeliveryPlan) -> None:
        with self._lock:
            self._pending += 1
        try:
            self._pool.submit(self._run, plan)
        except RuntimeError:  # the pool is shut down: the simulator is stopping
            self._finish_one()

    def _run_counted(self, plan: DeliveryPlan) -> None:
        with self._lock:
            self._pending += 1
        self._run(plan)

    def _run(self, plan: DeliveryPlan) -> None:
        try:
            if plan.delay and self._stopping.wait(plan.delay):
                return
            for outbound in plan.callbacks:
                self._deliver(outbound, plan)
        except Exception:  # a worker thread must never die silently
            logger.exception("callback delivery failed")
        finally:
            self._finish_one()

    def _finish_one(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def _deliver(self, outbound: Outbound, plan: DeliveryPlan) -> None:
        """POST until a 2xx answer, retrying with a doubling back-off as Safaricom does."""
        for attempt in range(1, plan.retries + 2):
            if self._stopping.is_set():
                return
            status, error = self._post(outbound)
            self._record_attempt(outbound, plan, attempt=attempt, status=status, error=error)
            if status is not None and 200 <= status < 300:
                return
            last = attempt > plan.retries
            if last or self._stopping.wait(plan.backoff * 2 ** (attempt - 1)):
                return

    def _post(self, outbound: Outbound) -> tuple[int | None, str]:
        try:
            response = self._http.post(outbound.url, json=outbound.body)
        except (httpx.HTTPError, httpx.InvalidURL, OSError, RuntimeError) as exc:
            # RuntimeError: the client was closed because the simulator is stopping.
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, ""

    def _record_attempt(
        self,
        outbound: Outbound,
        plan: DeliveryPlan,
        *,
        attempt: int,
        status: int | None,
        error: str,
    ) -> None:
        logger.info(
            "callback %s for %s to %s: %s",
            outbound.kind,
            outbound.originator_conversation_id,
            outbound.url,
            status or error,
        )
        with self._lock:
            if plan.generation != self._generation:
                return
            self._state.callbacks_sent.append(
                {
                    "url": outbound.url,
                    "status": status,
                    "originator_conversation_id": outbound.originator_conversation_id,
                    "kind": outbound.kind,
                    "attempt": attempt,
                    "error": error,
                }
            )


# ---------------------------------------------------------------------------------------------
# HTTP


@dataclass(frozen=True)
class SimRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    body: bytes


Endpoint = Callable[[DarajaService, SimRequest], Reply]


def _json_reply(value: dict[str, Any]) -> Reply:
    return Reply(200, value)


def _script_outcomes(body: bytes) -> list[Any]:
    outcomes = parse_json_object(body).get("outcomes")
    if not isinstance(outcomes, list):
        raise bad_request("outcomes")
    return outcomes


def _c2b_payments(service: DarajaService, payload: dict[str, Any]) -> dict[str, Any]:
    return service.add_c2b_payments(payload.get("payments"), payload.get("confirmation_url"))


ENDPOINTS: dict[str, dict[str, Endpoint]] = {
    "/oauth/v1/generate": {"GET": lambda s, r: s.oauth(r.authorization, r.query)},
    "/mpesa/b2c/v3/paymentrequest": {
        "POST": lambda s, r: s.b2c(r.authorization, r.body, version="v3")
    },
    "/mpesa/b2c/v1/paymentrequest": {
        "POST": lambda s, r: s.b2c(r.authorization, r.body, version="v1")
    },
    "/mpesa/transactionstatus/v1/query": {
        "POST": lambda s, r: s.transaction_status(r.authorization, r.body)
    },
    "/pulltransactions/v1/register": {
        "POST": lambda s, r: s.pull_register(r.authorization, r.body)
    },
    "/pulltransactions/v1/query": {"POST": lambda s, r: s.pull_query(r.authorization, r.body)},
    "/mpesa/c2b/v1/registerurl": {"POST": lambda s, r: s.c2b_register(r.authorization, r.body)},
    "/mpesa/c2b/v2/registerurl": {"POST": lambda s, r: s.c2b_register(r.authorization, r.body)},
    "/mpesa/accountbalance/v1/query": {
        "POST": lambda s, r: s.account_balance(r.authorization, r.body)
    },
    "/sim/state": {"GET": lambda s, r: _json_reply(s.state())},
    "/sim/config": {
        "GET": lambda s, r: _json_reply(s.config()),
        "POST": lambda s, r: _json_reply(s.configure(parse_json_object(r.body))),
    },
    "/sim/script": {
        "GET": lambda s, r: _json_reply(s.script()),
        "POST": lambda s, r: _json_reply(s.script(_script_outcomes(r.body))),
    },
    "/sim/reset": {"POST": lambda s, r: _json_reply(s.reset())},
    "/sim/expire-tokens": {"POST": lambda s, r: _json_reply(s.expire_tokens())},
    "/sim/c2b-payments": {
        "POST": lambda s, r: _json_reply(_c2b_payments(s, parse_json_object(r.body)))
    },
    "/sim/c2b-receipts": {
        "POST": lambda s, r: _json_reply(
            s.add_c2b_receipts(parse_json_object(r.body).get("receipts") or {})
        )
    },
}


def route(service: DarajaService, request: SimRequest) -> Reply:
    """The answer to one request; never raises."""
    try:
        methods = ENDPOINTS.get(request.path)
        if methods is None:
            raise DarajaError(404, "404.001.01", "Resource not found")
        endpoint = methods.get(request.method)
        if endpoint is None:
            raise DarajaError(405, "405.001.01", "Method not allowed")
        return endpoint(service, request)
    except DarajaError as exc:
        return service.error_reply(exc)
    except Exception:
        logger.exception("simulator error on %s %s", request.method, request.path)
        return service.error_reply(DarajaError(500, "500.001.1001", "Internal Server Error"))


def read_body(environ: Mapping[str, Any]) -> bytes:
    """The request body, exactly Content-Length bytes; a DarajaError for one we will not read.

    wsgiref hands the socket's stream over as it is, so a chunked body would be read as raw
    chunks: it is refused (411), as Daraja's clients always send Content-Length.
    """
    if environ.get("HTTP_TRANSFER_ENCODING"):
        raise DarajaError(411, "411.000.00", "Length Required: send Content-Length, not chunked")
    raw_length = environ.get("CONTENT_LENGTH") or ""
    if not raw_length:
        return b""
    try:
        length = int(raw_length)
    except ValueError:
        length = -1
    if length < 0:
        raise DarajaError(400, "400.000.00", "Bad Request - Invalid Content-Length")
    if length > MAX_BODY_BYTES:
        raise DarajaError(413, "413.000.00", "Request Entity Too Large")
    try:
        body = environ["wsgi.input"].read(length)
    except OSError:  # e.g. the socket timed out waiting for the rest
        body = b""
    if len(body) < length:  # the client stopped sending mid-body
        raise DarajaError(400, "400.000.00", "Bad Request - Incomplete body")
    return body


class SimulatorApp:
    """The simulator as a WSGI application: JSON answers from `route`, never an exception.

    DarajaSimulator serves it with wsgiref; any WSGI server would do as long as it runs one
    process, since the state lives in `service`.
    """

    def __init__(self, service: DarajaService) -> None:
        self.service = service

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            body = read_body(environ)
        except DarajaError as exc:
            reply = self.service.error_reply(exc)
        else:
            request = SimRequest(
                method=method,
                path=environ.get("PATH_INFO") or "/",
                query=parse_qs(environ.get("QUERY_STRING", "")),
                authorization=environ.get("HTTP_AUTHORIZATION"),
                body=body,
            )
            reply = route(self.service, request)
        data = json.dumps(reply.body, default=str).encode("utf-8")
        start_response(
            f"{reply.status} {HTTPStatus(reply.status).phrase}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("Server", SERVER_SOFTWARE),
            ],
        )
        return [b"" if method == "HEAD" else data]


class _Handler(WSGIRequestHandler):
    """wsgiref's handler: one request per connection (it answers HTTP/1.0, so clients such as
    httpx open a new connection for the next request instead of reusing this one)."""

    server_version = SERVER_SOFTWARE
    timeout = 120  # a connection that sends no request is closed after this many seconds
    # Buffered: wsgiref writes the status line, each header and the body separately, which on
    # an unbuffered socket is one TCP segment each. This sends the whole answer at once.
    wbufsize = 64 * 1024

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (malformed request line, bad headers) as JSON too."""
        self.close_connection = True
        text = message or self.responses.get(code, ("Error", ""))[0]
        body = {"requestId": "", "errorCode": f"{code}.000.00", "errorMessage": text}
        data = json.dumps(body).encode("utf-8")
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client is gone

    def version_string(self) -> str:
        return self.server_version  # without the Python version http.server appends

    def log_message(self, format: str, *args: Any) -> None:
        # wsgiref prints a line per request to stderr; the simulator logs them at debug level.
        logger.debug("%s " + format, self.address_string(), *args)


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref's WSGI server with a thread per connection: payout workers call concurrently,
    and a hanging request must not hold up the others."""

    daemon_threads = True
    block_on_close = False  # stop() does not wait for a hanging request to be answered
    # Every request is a new connection: a burst from many workers must not overflow the
    # listen backlog (socketserver's default is 5, and a dropped SYN costs a second or more).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: SimulatorApp) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.set_app(app)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can hang without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s failed", client_address, exc_info=True)


class DarajaSimulator:
    """The simulator on a real socket, served from a background thread.

    >>> sim = DarajaSimulator(SimConfig(seed=1))
    >>> base_url = sim.start()
    >>> ...
    >>> sim.stop()
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = DarajaService(config or SimConfig(), clock=clock)
        self.app = SimulatorApp(self.service)
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Bind (port 0: any free port), serve in a daemon thread, return the base URL."""
        if self._server is not None:
            raise RuntimeError("the simulator is already started")
        self._server = _Server(self._address, self.app)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="daraja-simulator",
            daemon=True,
        )
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._server.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def stop(self) -> None:
        self.service.begin_stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.service.close()
        self._server = self._thread = None

    def __enter__(self) -> DarajaSimulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Shortcuts for tests and scripts that embed the simulator.

    def state(self) -> dict[str, Any]:
        return self.service.state()

    def script(self, *outcomes: str) -> None:
        self.service.script(list(outcomes))

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self.service.configure(changes)

    def wait_for_callbacks(self, timeout: float = 15.0) -> bool:
        return self.service.wait_for_callbacks(timeout)

    def add_c2b_receipts(self, **receipts: Any) -> dict[str, Any]:
        return self.service.add_c2b_receipts(receipts)

    def add_c2b_payments(
        self, *payments: dict[str, Any], confirmation_url: str | None = None
    ) -> list[dict[str, Any]]:
        answer = self.service.add_c2b_payments(list(payments), confirmation_url)
        return list(answer["payments"])
