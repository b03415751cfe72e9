"""Writes on the M-Pesa side: payout outbox rows (callbacks live in mpesa.callbacks)."""

from __future__ import annotations

from decimal import Decimal

from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import Transaction
from tuktuk.mpesa.models import Payout, PayoutState


def payout_queue(
    *,
    driver: Driver,
    amount: Decimal,
    kind: str,
    originator_conversation_id: str,
    instant: bool,
    transaction: Transaction | None = None,
) -> Payout:
    """Create the outbox row for one B2C transfer, inside the caller's transaction.

    The OriginatorConversationID is derived from what is being paid (the TransID, the bonus
    day), so the same payment can never get a second payout with a fresh id.
    """
    return Payout.objects.create(
        kind=kind,
        transaction=transaction,
        driver=driver,
        phone=driver.mpesa_number,
        amount=amount,
        state=PayoutState.PENDING if instant else PayoutState.HELD,
        originator_conversation_id=originator_conversation_id,
    )


def share_originator_id(trans_id: str) -> str:
    return f"TTL-{trans_id}"


def bonus_originator_id(*, driver_id: str, business_day: str) -> str:
    return f"TTL-BONUS-{driver_id}-{business_day}"
