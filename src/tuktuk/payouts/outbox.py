"""The payout outbox the ledger writes to (its PayoutOutbox port), and the idempotency keys.

The OriginatorConversationID is derived from what is being paid (the TransID, the bonus day),
so the same payment can never get a second payout with a fresh id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import DepositRefund, Transaction
from tuktuk.ledger.ports import BonusToQueue, ShareToQueue
from tuktuk.payouts.models import Payout, PayoutKind, PayoutState


def share_originator_id(trans_id: str) -> str:
    return f"TTL-{trans_id}"


def refund_originator_id(*, driver_id: str, refund_pk: int) -> str:
    return f"TTL-REFUND-{driver_id}-{refund_pk}"


def bonus_originator_id(*, driver_id: str, business_day: dt.date) -> str:
    return f"TTL-BONUS-{driver_id}-{business_day.isoformat()}"


def payout_queue(
    *,
    driver: Driver,
    amount: Decimal,
    kind: PayoutKind,
    originator_conversation_id: str,
    instant: bool,
    transaction: Transaction | None = None,
    refund: DepositRefund | None = None,
) -> Payout:
    """Create the outbox row for one transfer, inside the caller's transaction."""
    row = _payout_row(
        driver=driver,
        amount=amount,
        kind=kind,
        originator_conversation_id=originator_conversation_id,
        instant=instant,
        transaction=transaction,
        refund=refund,
    )
    row.save(force_insert=True)
    return row


def _payout_row(
    *,
    driver: Driver,
    amount: Decimal,
    kind: PayoutKind,
    originator_conversation_id: str,
    instant: bool,
    transaction: Transaction | None = None,
    refund: DepositRefund | None = None,
) -> Payout:
    return Payout(
        kind=kind,
        transaction=transaction,
        refund=refund,
        driver=driver,
        phone=driver.mpesa_number,
        amount=amount,
        state=PayoutState.PENDING if instant else PayoutState.HELD,
        originator_conversation_id=originator_conversation_id,
    )


class OutboxForLedger:
    """The ledger's PayoutOutbox port (see tuktuk.ledger.ports)."""

    def share_queue(
        self, *, transaction: Transaction, driver: Driver, amount: Decimal, instant: bool
    ) -> None:
        payout_queue(
            driver=driver,
            amount=amount,
            kind=PayoutKind.SHARE,
            originator_conversation_id=share_originator_id(transaction.trans_id),
            instant=instant,
            transaction=transaction,
        )

    def shares_queue(self, *, shares: Sequence[ShareToQueue]) -> None:
        Payout.objects.bulk_create(
            [
                _payout_row(
                    driver=share.driver,
                    amount=share.amount,
                    kind=PayoutKind.SHARE,
                    originator_conversation_id=share_originator_id(share.transaction.trans_id),
                    instant=share.instant,
                    transaction=share.transaction,
                )
                for share in shares
            ]
        )

    def bonuses_queue(self, *, bonuses: Sequence[BonusToQueue]) -> None:
        Payout.objects.bulk_create(
            [
                _payout_row(
                    driver=bonus.driver,
                    amount=bonus.amount,
                    kind=PayoutKind.BONUS,
                    originator_conversation_id=bonus_originator_id(
                        driver_id=bonus.driver.driver_id, business_day=bonus.business_day
                    ),
                    instant=bonus.instant,
                )
                for bonus in bonuses
            ]
        )

    def refund_queue(self, *, refund: DepositRefund, driver: Driver, amount: Decimal) -> None:
        payout_queue(
            driver=driver,
            amount=amount,
            kind=PayoutKind.REFUND,
            originator_conversation_id=refund_originator_id(
                driver_id=driver.driver_id, refund_pk=refund.pk
            ),
            instant=True,  # a fleet manager approved this very transfer
            refund=refund,
        )
