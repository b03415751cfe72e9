"""How an SMS reaches a provider: a small protocol, and what an answer tells us about the message.

Every answer is one of: accepted (the provider took it, with its message id), rejected (the
provider will never deliver it: a bad number, a blacklisted subscriber), refused before the
provider processed it (an outage, a wrong key: safe to try again later), or unknown (it may
have been processed: never resend blindly). Africa's Talking is the first implementation
(`africastalking.py`); the log-only gateway is the default when none is configured.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmsAccepted:
    message_id: str
    status: str
    status_code: str = ""
    cost: str = ""


@dataclass(frozen=True)
class SmsRejected:
    """The provider refused this message for good (its answer for this number)."""

    detail: str
    status: str = ""
    status_code: str = ""


@dataclass(frozen=True)
class SmsRefused:
    """Not processed by the provider (never reached it, outage, credentials): try again later."""

    detail: str


@dataclass(frozen=True)
class SmsUnknown:
    """The request may have been processed (timeout after sending, 5xx, an unreadable answer)."""

    detail: str


SmsOutcome = SmsAccepted | SmsRejected | SmsRefused | SmsUnknown


class SmsGateway(Protocol):
    name: str

    def send(self, *, phone: str, text: str, sensitive: bool = False) -> SmsOutcome:
        """Send `text` to `phone` (2547XXXXXXXX). `sensitive`: the text holds a one-time code,
        which must not be written to any log."""
        ...

    def close(self) -> None: ...


def masked_phone(phone: str) -> str:
    return f"{phone[:4]}•••••{phone[-3:]}" if len(phone) > 7 else "•••"


class LogGateway:
    """No SMS provider configured: each message is written to the log instead (a one-time code
    is withheld), and counts as sent."""

    name = "log"

    def send(self, *, phone: str, text: str, sensitive: bool = False) -> SmsOutcome:
        logger.info(
            "sms (log gateway: no provider configured)",
            extra={
                "to": masked_phone(phone),
                "text": "[one-time code withheld]" if sensitive else text,
            },
        )
        return SmsAccepted(message_id=f"log-{uuid.uuid4().hex}", status="Logged")

    def close(self) -> None:
        pass


def gateway_from_settings() -> SmsGateway:
    """The configured gateway (TUKTUK_SMS_GATEWAY; Africa's Talking when its username and key
    are set, else the log)."""
    if settings.SMS_GATEWAY == "africastalking":
        # Imported here: that module imports this one.
        from tuktuk.backoffice.sms.africastalking import AfricasTalkingGateway

        return AfricasTalkingGateway()
    return LogGateway()
