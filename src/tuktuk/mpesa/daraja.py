"""Daraja HTTP client (httpx): OAuth token cache, B2C payment request, Transaction Status, Pull
Transactions (register, query), C2B RegisterURL and Account Balance (tuktuk mpesa).

Every answer is classified by what it tells us about the money: accepted, refused before M-Pesa
processed it (safe to try again), or unknown (the request may have been processed: never resend
blindly). Credentials are read from settings (the environment) and never logged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone

from tuktuk.payouts.gateway import Accepted, AlreadySubmitted, Outcome, Refused, Unknown

logger = logging.getLogger(__name__)

DUPLICATE_ORIGINATOR_ID = "500.002.1001"
# Refresh the token this long before Daraja says it expires.
TOKEN_MARGIN_SECONDS = 60

C2B_REGISTER_PATH = "/mpesa/c2b/v1/registerurl"
ACCOUNT_BALANCE_PATH = "/mpesa/accountbalance/v1/query"
PULL_REGISTER_PATH = "/pulltransactions/v1/register"
PULL_QUERY_PATH = "/pulltransactions/v1/query"
PULL_SUCCESS = "1000"
# StartDate / EndDate as Daraja's examples write them, in Kenyan wall-clock time.
PULL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# A window of an hour holds a few thousand fares at most; this many pages means a server that
# never sends the empty page ending the list.
PULL_MAX_PAGES = 1000


class DarajaNotConfigured(RuntimeError):
    pass


class DarajaCallFailed(RuntimeError):
    """A set-up or query call did not give us an answer we can use (the reason says why: not
    reached, refused with Daraja's error code, an answer of another shape)."""


class PullFailed(DarajaCallFailed):
    """The Pull Transactions call did not give us an answer we can use. Nothing was changed
    (register and query only read or record on Daraja's side), so it is safe to call again."""


def is_configured() -> bool:
    return all(
        [
            settings.MPESA_CONSUMER_KEY,
            settings.MPESA_CONSUMER_SECRET,
            settings.MPESA_SHORTCODE,
            settings.MPESA_INITIATOR_NAME,
            settings.MPESA_SECURITY_CREDENTIAL,
        ]
    )


def callback_url(kind: str) -> str:
    return f"{settings.PUBLIC_URL}/b2c/{settings.CALLBACK_TOKEN}/{kind}"


class DarajaClient:
    def __init__(self, *, base_url: str | None = None, timeout: float | None = None) -> None:
        if not is_configured():
            raise DarajaNotConfigured(
                "set TUKTUK_MPESA_CONSUMER_KEY, _CONSUMER_SECRET, _SHORTCODE, _INITIATOR_NAME "
                "and _SECURITY_CREDENTIAL"
            )
        seconds = timeout or settings.MPESA_TIMEOUT_SECONDS
        self._http = httpx.Client(
            base_url=base_url or settings.MPESA_BASE_URL,
            timeout=httpx.Timeout(seconds, connect=min(5.0, seconds)),
        )
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    # The PayoutGateway protocol (tuktuk.payouts.gateway) -----------------------------------

    def send(self, *, reference: str, amount: Decimal, phone: str, remarks: str) -> Outcome:
        return self.b2c_payment(
            originator_conversation_id=reference, amount=amount, phone=phone, remarks=remarks
        )

    def query(self, *, reference: str) -> Outcome:
        return self.transaction_status(originator_conversation_id=reference)

    # The ledger's ReceiptVerifier port (tuktuk.ledger.ports) -------------------------------

    def receipt_query(self, *, trans_id: str, occasion: str) -> str | None:
        outcome = self.transaction_status(transaction_id=trans_id, occasion=occasion)
        return None if isinstance(outcome, Accepted) else str(outcome)

    # OAuth ---------------------------------------------------------------------------------

    def _fetch_token(self) -> str:
        response = self._http.get(
            "/oauth/v1/generate",
            params={"grant_type": "client_credentials"},
            auth=(settings.MPESA_CONSUMER_KEY, settings.MPESA_CONSUMER_SECRET),
        )
        response.raise_for_status()
        body = response.json()
        # Daraja sends expires_in as a string ("3599").
        lifetime = float(body.get("expires_in", 3599))
        self._token = str(body["access_token"])
        self._token_expires_at = time.monotonic() + max(0.0, lifetime - TOKEN_MARGIN_SECONDS)
        return self._token

    def token(self, *, refresh: bool = False) -> str:
        with self._lock:
            if refresh or self._token is None or time.monotonic() >= self._token_expires_at:
                return self._fetch_token()
            return self._token

    # Requests ------------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> Outcome | httpx.Response:
        """POST with a bearer token; one token refresh when Daraja says the token is invalid
        (it refused the request without processing it, so sending it again is safe)."""
        for attempt in (1, 2):
            try:
                token = self.token(refresh=attempt == 2)
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                return Refused(f"OAuth failed: {type(exc).__name__}: {exc}")
            try:
                response = self._http.post(
                    path, json=body, headers={"Authorization": f"Bearer {token}"}
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                return Refused(f"not reached: {type(exc).__name__}: {exc}")
            except httpx.HTTPError as exc:
                # Sent (or partly sent) and no answer: M-Pesa may have processed it.
                return Unknown(f"no answer: {type(exc).__name__}: {exc}")
            if response.status_code == 401 and attempt == 1:
                continue
            return response
        return Refused("OAuth token refused twice")

    def b2c_payment(
        self, *, originator_conversation_id: str, amount: Decimal, phone: str, remarks: str
    ) -> Outcome:
        body = {
            "OriginatorConversationID": originator_conversation_id,
            "InitiatorName": settings.MPESA_INITIATOR_NAME,
            "SecurityCredential": settings.MPESA_SECURITY_CREDENTIAL,
            "CommandID": "BusinessPayment",
            "Amount": int(amount),  # whole shillings only
            "PartyA": settings.MPESA_SHORTCODE,
            "PartyB": phone,
            "Remarks": remarks[:100] or "Driver payout",
            "QueueTimeOutURL": callback_url("timeout"),
            "ResultURL": callback_url("result"),
            "Occasion": originator_conversation_id,
        }
        result = self._post(settings.MPESA_B2C_PATH, body)
        if not isinstance(result, httpx.Response):
            return result
        return _classify(result, originator_conversation_id)

    def transaction_status(
        self, *, originator_conversation_id: str = "", transaction_id: str = "", occasion: str = ""
    ) -> Outcome:
        """Ask about a B2C request (by our OriginatorConversationID) or any M-Pesa receipt
        (TransactionID). The answer comes later to the status-result callback; `occasion`
        comes back in it and tells us what we asked about."""
        occasion = occasion or originator_conversation_id
        body = {
            "Initiator": settings.MPESA_INITIATOR_NAME,
            "SecurityCredential": settings.MPESA_SECURITY_CREDENTIAL,
            "CommandID": "TransactionStatusQuery",
            "TransactionID": transaction_id,
            "OriginatorConversationID": originator_conversation_id,
            "PartyA": settings.MPESA_SHORTCODE,
            "IdentifierType": "4",
            "ResultURL": callback_url("status-result"),
            "QueueTimeOutURL": callback_url("status-timeout"),
            "Remarks": "Status check",
            "Occasion": occasion,
        }
        result = self._post("/mpesa/transactionstatus/v1/query", body)
        if not isinstance(result, httpx.Response):
            return result
        return _classify(result, originator_conversation_id)

    # Pull Transactions -----------------------------------------------------------------------

    def _json_call(
        self, path: str, body: dict[str, Any], failure: type[DarajaCallFailed] = DarajaCallFailed
    ) -> dict[str, Any]:
        result = self._post(path, body)
        if not isinstance(result, httpx.Response):
            raise failure(getattr(result, "detail", "") or str(result))
        try:
            # Exact amounts: a JSON number 150.50 must not become a binary float.
            answer = json.loads(result.text, parse_float=Decimal)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise failure(f"HTTP {result.status_code}: the answer is not a JSON object")
        if result.status_code != 200:
            code, message = answer.get("errorCode", ""), answer.get("errorMessage", "")
            raise failure(f"HTTP {result.status_code} {code} {message}".strip())
        return answer

    def _pull_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._json_call(path, body, PullFailed)

    # C2B RegisterURL and Account Balance (the set-up: tuktuk mpesa) -------------------------

    def c2b_register_urls(
        self, *, short_code: str, response_type: str, confirmation_url: str, validation_url: str
    ) -> dict[str, Any]:
        """Tell M-Pesa where to send the shortcode's C2B validation and confirmation requests.
        `response_type`: what M-Pesa does when our validation URL cannot be reached
        (Completed: the payment goes through; Cancelled: it is refused)."""
        answer = self._json_call(
            C2B_REGISTER_PATH,
            {
                "ShortCode": short_code,
                "ResponseType": response_type,
                "ConfirmationURL": confirmation_url,
                "ValidationURL": validation_url,
            },
        )
        code = str(answer.get("ResponseCode", ""))
        if code not in ("0", "00000000"):
            raise DarajaCallFailed(
                f"registration refused: {code} {answer.get('ResponseDescription', '')}".strip()
            )
        return answer

    def account_balance(self, *, result_url: str, timeout_url: str) -> dict[str, Any]:
        """Ask for the shortcode's balances with the B2C initiator: no money moves, and the
        result (the balances, or why the initiator was refused) comes later to `result_url`.
        Returns the synchronous acceptance (its OriginatorConversationID names the result)."""
        answer = self._json_call(
            ACCOUNT_BALANCE_PATH,
            {
                "Initiator": settings.MPESA_INITIATOR_NAME,
                "SecurityCredential": settings.MPESA_SECURITY_CREDENTIAL,
                "CommandID": "AccountBalance",
                "PartyA": settings.MPESA_SHORTCODE,
                "IdentifierType": "4",
                "Remarks": "TukTuk Ledger set-up check",
                "QueueTimeOutURL": timeout_url,
                "ResultURL": result_url,
            },
        )
        code = str(answer.get("ResponseCode", ""))
        if code != "0":
            raise DarajaCallFailed(
                f"refused: {code} {answer.get('ResponseDescription', '')}".strip()
            )
        return answer

    def pull_register(self, *, nominated_number: str, callback_url: str) -> dict[str, Any]:
        """Register our shortcode for Pull Transactions (once per shortcode)."""
        answer = self._pull_post(
            PULL_REGISTER_PATH,
            {
                "ShortCode": settings.MPESA_SHORTCODE,
                "RequestType": "Pull",
                "NominatedNumber": nominated_number,
                "CallBackURL": callback_url,
            },
        )
        # The documented answer says ResponseStatus; the query's says ResponseCode.
        status = str(answer.get("ResponseStatus", answer.get("ResponseCode", "")))
        if status != PULL_SUCCESS:
            raise PullFailed(f"register refused: {status} {answer.get('ResponseDescription', '')}")
        return answer

    def pull_page(self, *, since: dt.datetime, until: dt.datetime, offset: int) -> list[Any]:
        """One page of the C2B transactions M-Pesa holds for our shortcode in [since, until]."""
        answer = self._pull_post(
            PULL_QUERY_PATH,
            {
                "ShortCode": settings.MPESA_SHORTCODE,
                "StartDate": timezone.localtime(since).strftime(PULL_TIME_FORMAT),
                "EndDate": timezone.localtime(until).strftime(PULL_TIME_FORMAT),
                "OffSetValue": str(offset),
            },
        )
        code = str(answer.get("ResponseCode", ""))
        if code != PULL_SUCCESS:
            raise PullFailed(f"query refused: {code} {answer.get('ResponseMessage', '')}".strip())
        listed = answer.get("Response") or []
        if not isinstance(listed, list):
            raise PullFailed("query answer: Response is not a list")
        # Daraja's sample nests the rows in a list of lists; a flat list is read as well.
        rows: list[Any] = []
        for item in listed:
            rows.extend(item if isinstance(item, list) else [item])
        return rows

    def pull_transactions(self, *, since: dt.datetime, until: dt.datetime) -> list[Any]:
        """Every row in the window, page by page (OffSetValue = rows already read) until an
        empty page. Rows are returned as M-Pesa sent them; reading them is the caller's job."""
        rows: list[Any] = []
        previous: list[Any] | None = None
        for _ in range(PULL_MAX_PAGES):
            page = self.pull_page(since=since, until=until, offset=len(rows))
            if not page:
                return rows
            if page == previous:
                raise PullFailed("query answered the same page twice (OffSetValue ignored?)")
            rows.extend(page)
            previous = page
        raise PullFailed(f"query still listing after {PULL_MAX_PAGES} pages")


def _classify(response: httpx.Response, originator_conversation_id: str) -> Outcome:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("errorCode", ""))
    detail = f"HTTP {response.status_code} {code} {body.get('errorMessage', '')}".strip()
    if code == DUPLICATE_ORIGINATOR_ID:
        return AlreadySubmitted(detail)
    if response.status_code == 200 and "ResponseCode" in body and str(body["ResponseCode"]) != "0":
        return Refused(
            f"HTTP 200 ResponseCode {body['ResponseCode']} {body.get('ResponseDescription', '')}"
        )
    if response.status_code == 200 and str(body.get("ResponseCode")) == "0":
        return Accepted(
            conversation_id=str(body.get("ConversationID", "")),
            originator_conversation_id=str(
                body.get("OriginatorConversationID", originator_conversation_id)
            ),
        )
    if 400 <= response.status_code < 500:
        return Refused(detail)
    return Unknown(detail)


def receipt_verifier_when_configured() -> DarajaClient | None:
    """The ledger's ReceiptVerifier (tuktuk.ledger.ports): a client when Daraja is configured."""
    return DarajaClient() if is_configured() else None
