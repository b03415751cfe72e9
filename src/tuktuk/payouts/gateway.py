"""How payouts reach a provider: a small protocol the payouts layer owns, and what an answer
tells us about the money. The M-Pesa layer implements it with Daraja's B2C API.

Every answer is one of: accepted, already submitted (the provider holds this idempotency key),
refused before the provider processed it (safe to try again), or unknown (the request may have
been processed: never resend blindly).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class Accepted:
    conversation_id: str
    originator_conversation_id: str


@dataclass(frozen=True)
class AlreadySubmitted:
    """The provider already holds a request with this idempotency key."""

    detail: str


@dataclass(frozen=True)
class Refused:
    """Not processed by the provider (never reached it, or refused as invalid): may be tried
    again."""

    detail: str


@dataclass(frozen=True)
class Unknown:
    """The request may have been processed (timeout after sending, 5xx): do not resend."""

    detail: str


Outcome = Accepted | AlreadySubmitted | Refused | Unknown


class PayoutGateway(Protocol):
    def send(self, *, reference: str, amount: Decimal, phone: str, remarks: str) -> Outcome:
        """Ask the provider to pay `amount` (whole shillings) to `phone`; `reference` is the
        idempotency key (our OriginatorConversationID)."""
        ...

    def query(self, *, reference: str) -> Outcome:
        """Ask what became of the transfer `reference`; the answer arrives as a callback."""
        ...

    def close(self) -> None: ...
