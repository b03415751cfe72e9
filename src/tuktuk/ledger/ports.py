"""What the ledger needs from the layers above it, as protocols the ledger owns.

The ledger decides *that* a driver is owed a transfer (a fare's share, a bonus) and records it
in the same transaction as the money; *how* it is sent belongs to the payouts layer, which
installs its outbox here when Django starts (PayoutsConfig.ready). Likewise, verifying a
missed payment's receipt with the provider belongs to the M-Pesa layer, and so does the inbox
of stored confirmations that a day close must wait for. The ledger never imports either:
import-linter holds that line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from tuktuk.fleet.models import Driver
    from tuktuk.ledger.models import DepositRefund, Transaction


@dataclass(frozen=True)
class ShareToQueue:
    transaction: Transaction
    driver: Driver
    amount: Decimal
    instant: bool


@dataclass(frozen=True)
class BonusToQueue:
    driver: Driver
    business_day: dt.date
    amount: Decimal
    instant: bool


class PayoutOutbox(Protocol):
    """Queues transfers inside the caller's database transaction (an outbox row, no network)."""

    def share_queue(
        self, *, transaction: Transaction, driver: Driver, amount: Decimal, instant: bool
    ) -> None: ...

    def shares_queue(self, *, shares: Sequence[ShareToQueue]) -> None:
        """share_queue for many fares at once (the posting engine's batch)."""
        ...

    def bonuses_queue(self, *, bonuses: Sequence[BonusToQueue]) -> None:
        """The bonuses of the drivers who met their target on a closed day."""
        ...

    def refund_queue(self, *, refund: DepositRefund, driver: Driver, amount: Decimal) -> None:
        """An approved deposit refund: sent without waiting for a release."""
        ...


class ReceiptVerifier(Protocol):
    """Asks the provider whether a receipt is real. The answer arrives later, asynchronously,
    and is applied with `ledger.missed.missed_payment_verified`."""

    def receipt_query(self, *, trans_id: str, occasion: str) -> str | None:
        """None when the query was accepted, else why it was not (it can be asked again)."""
        ...

    def close(self) -> None: ...


class ConfirmationInbox(Protocol):
    """The stored payment confirmations not yet posted. A business day closes only when none
    received before its cutoff is still waiting (a failed one is visible and does not block)."""

    def unposted_received_before(self, *, moment: dt.datetime) -> int: ...


class _NoInbox:
    """Without a provider layer no confirmation can be waiting."""

    def unposted_received_before(self, *, moment: dt.datetime) -> int:
        return 0


_payout_outbox: PayoutOutbox | None = None
_confirmation_inbox: ConfirmationInbox = _NoInbox()
_receipt_verifier_factory: Callable[[], ReceiptVerifier | None] = lambda: None  # noqa: E731


def payout_outbox_install(outbox: PayoutOutbox) -> None:
    global _payout_outbox
    _payout_outbox = outbox


def payout_outbox() -> PayoutOutbox:
    # Failing loudly: without an outbox a driver's share would silently never be paid.
    if _payout_outbox is None:
        raise ImproperlyConfigured(
            "no payout outbox installed: add tuktuk.payouts to INSTALLED_APPS"
        )
    return _payout_outbox


def receipt_verifier_install(factory: Callable[[], ReceiptVerifier | None]) -> None:
    """`factory` returns a verifier, or None when no provider is configured (then missed
    payments post without verification, as an operator recorded them)."""
    global _receipt_verifier_factory
    _receipt_verifier_factory = factory


def receipt_verifier() -> ReceiptVerifier | None:
    return _receipt_verifier_factory()


def confirmation_inbox_install(inbox: ConfirmationInbox) -> None:
    global _confirmation_inbox
    _confirmation_inbox = inbox


def confirmation_inbox() -> ConfirmationInbox:
    return _confirmation_inbox
