"""The payout outbox the ledger writes to (its PayoutOutbox port), and the idempotency keys.

The OriginatorConversationID is derived from what is being paid (the TransID, the bonus day),
so the same payment can never get a second payout with a fresh id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from tuktuk.core.db import rows_insert
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


def payout_row(
    *,
    driver: Driver,
    amount: Decimal,
    kind: PayoutKind,
    originator_conversation_id: str,
    instant: bool,
    transaction: Transaction | None = None,
    refund: DepositRefund | None = None,
) -> dict[str, Any]:
    """The outbox row for one transfer, for payouts_insert."""
    return {
        "kind": kind.value,
        "transaction_id": transaction.pk if transaction is not None else None,
        "refund_id": refund.pk if refund is not None else None,
        "driver_id": driver.pk,
        "phone": driver.mpesa_number,
        "amount": amount,
        "state": (PayoutState.PENDING if instant else PayoutState.HELD).value,
        "originator_conversation_id": originator_conversation_id,
    }


def payouts_insert(rows: Sequence[dict[str, Any]]) -> None:
    """Write outbox rows inside the caller's transaction: one statement however many (a
    batch of fares, a day close's bonuses), without building model instances."""
    rows_insert(model=Payout, rows=rows)


class OutboxForLedger:
    """The ledger's PayoutOutbox port (see tuktuk.ledger.ports)."""

    def share_queue(
        self, *, transaction: Transaction, driver: Driver, amount: Decimal, instant: bool
    ) -> None:
        self.shares_queue(
            shares=[
                ShareToQueue(transaction=transaction, driver=driver, amount=amount, instant=instant)
            ]
        )

    def shares_queue(self, *, shares: Sequence[ShareToQueue]) -> None:
        payouts_insert(
            [
                payout_row(
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
        payouts_insert(
            [
                payout_row(
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
        payouts_insert(
            [
                payout_row(
                    driver=driver,
                    amount=amount,
                    kind=PayoutKind.REFUND,
                    originator_conversation_id=refund_originator_id(
                        driver_id=driver.driver_id, refund_pk=refund.pk
                    ),
                    instant=True,  # a fleet manager approved this very transfer
                    refund=refund,
                )
            ]
        )
