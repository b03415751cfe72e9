"""Africa's Talking's SMS API (POST /version1/messaging) as an SmsGateway, over httpx.

Not the official SDK: it hard-codes the sandbox and production hosts, and a configurable base
URL (TUKTUK_AT_BASE_URL) is what lets the tests put a local stand-in of the API in its place
(and an operator put a proxy in front of it). The API key is read from settings (the
environment) and never logged.

The answer for each recipient carries a statusCode: 100 Processed, 101 Sent and 102 Queued
mean accepted (with a messageId); 401 RiskHold, 402 InvalidSenderId, 405 InsufficientBalance,
500 InternalServerError and 501 GatewayError mean the message was not sent and may be tried
again later; the other codes (403 InvalidPhoneNumber, 404 UnsupportedNumberType,
406 UserInBlacklist, 407 CouldNotRoute, 409 DoNotDisturbRejection, 502 RejectedByGateway) are
final for that number.
"""

from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings

from tuktuk.backoffice.sms.gateway import (
    SmsAccepted,
    SmsOutcome,
    SmsRefused,
    SmsRejected,
    SmsUnknown,
)

MESSAGING_PATH = "/version1/messaging"
ACCEPTED_CODES = frozenset({"100", "101", "102"})
# Not sent, and nothing wrong with the number: an account or provider problem, tried again later.
RETRY_CODES = frozenset({"401", "402", "405", "500", "501"})
# HTTP answers that mean the request was not processed at all.
NOT_PROCESSED_HTTP = frozenset({401, 403, 429, 503})


class AfricasTalkingNotConfigured(RuntimeError):
    pass


def international(phone: str) -> str:
    """2547XXXXXXXX → +2547XXXXXXXX, the form Africa's Talking takes and answers with."""
    return phone if phone.startswith("+") else f"+{phone}"


class AfricasTalkingGateway:
    name = "africastalking"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        username: str | None = None,
        api_key: str | None = None,
        sender_id: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.username = username if username is not None else settings.AT_USERNAME
        api_key = api_key if api_key is not None else settings.AT_API_KEY
        if not self.username or not api_key:
            raise AfricasTalkingNotConfigured("set TUKTUK_AT_USERNAME and TUKTUK_AT_API_KEY")
        self.sender_id = sender_id if sender_id is not None else settings.AT_SENDER_ID
        seconds = timeout or settings.SMS_TIMEOUT_SECONDS
        self._http = httpx.Client(
            base_url=base_url or settings.AT_BASE_URL,
            timeout=httpx.Timeout(seconds, connect=min(5.0, seconds)),
            headers={"apiKey": api_key, "Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def send(self, *, phone: str, text: str, sensitive: bool = False) -> SmsOutcome:
        form = {"username": self.username, "to": international(phone), "message": text}
        if self.sender_id:
            form["from"] = self.sender_id
        try:
            response = self._http.post(MESSAGING_PATH, data=form)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return SmsRefused(f"not reached: {type(exc).__name__}: {exc}")
        except httpx.HTTPError as exc:
            # Sent (or partly sent) and no answer: the provider may have processed it.
            return SmsUnknown(f"no answer: {type(exc).__name__}: {exc}")
        return outcome_of(response, phone=phone)


def outcome_of(response: httpx.Response, *, phone: str) -> SmsOutcome:
    status = response.status_code
    text = response.text[:300]
    if status in NOT_PROCESSED_HTTP:
        return SmsRefused(f"HTTP {status}: {text}")
    if status == 400:
        return SmsRejected(f"HTTP 400: {text}", status="BadRequest", status_code="400")
    if status >= 300:
        return SmsUnknown(f"HTTP {status}: {text}")
    try:
        data: Any = response.json()
        recipients = data["SMSMessageData"]["Recipients"]
        summary = str(data["SMSMessageData"].get("Message", ""))
    except (ValueError, KeyError, TypeError):
        return SmsUnknown(f"HTTP {status}, unreadable answer: {text}")
    if not isinstance(recipients, list):
        return SmsUnknown(f"HTTP {status}, unreadable answer: {text}")
    ours = [
        r for r in recipients if isinstance(r, dict) and r.get("number") == international(phone)
    ]
    if not ours:
        if not recipients:  # e.g. "InvalidPhoneNumber": nobody was sent anything
            return SmsRejected(summary or "no recipient accepted", status=summary)
        return SmsUnknown(f"the answer names other recipients: {text}")
    recipient = ours[0]
    code = str(recipient.get("statusCode", ""))
    label = str(recipient.get("status", ""))
    if code in ACCEPTED_CODES:
        message_id = str(recipient.get("messageId") or "")
        if not message_id or message_id == "None":
            return SmsUnknown(f"accepted without a message id: {text}")
        return SmsAccepted(
            message_id=message_id,
            status=label,
            status_code=code,
            cost=str(recipient.get("cost", ""))[:30],
        )
    if code in RETRY_CODES:
        return SmsRefused(f"{code} {label}")
    return SmsRejected(f"{code} {label}", status=label, status_code=code)
