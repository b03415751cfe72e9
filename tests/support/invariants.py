"""The invariants of docs/design.md section 4, checked against the database after a run."""

from __future__ import annotations

from collections import Counter

from django.db.models import Count, Sum

from tuktuk.core.money import ZERO
from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import (
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.payouts.models import Payout


def assert_invariants(*, sent_trans_ids: list[str] | None = None) -> None:
    # 1. One transaction per TransID.
    counts = Counter(Transaction.objects.values_list("trans_id", flat=True))
    assert all(n == 1 for n in counts.values()), counts.most_common(3)
    if sent_trans_ids is not None:
        assert set(counts) == set(sent_trans_ids)
    # 2. Cached balance == sum of the open day's entries, for every driver.
    for driver in Driver.objects.all():
        total = (
            LedgerEntry.objects.filter(driver=driver, business_day=driver.balance_day).aggregate(
                s=Sum("amount")
            )["s"]
            or ZERO
        )
        assert driver.current_balance == total, (driver.driver_id, driver.current_balance, total)
    # 3. Every completed payment: exactly one contribution entry equal to its contribution.
    payments = Transaction.objects.filter(
        status=TransactionStatus.COMPLETED, transaction_type=TransactionType.PAYMENT
    ).annotate(entries=Count("entry"))
    for payment in payments.select_related("entry"):
        assert payment.entries == 1, payment.trans_id
        assert payment.entry.kind == EntryKind.CONTRIBUTION
        assert payment.entry.amount == payment.target_contribution
        assert payment.entry.business_day == payment.business_day
        # 4. A = share + contribution, nothing negative.
        assert payment.amount == payment.driver_share + payment.target_contribution
        assert payment.driver_share >= 0 and payment.target_contribution >= 0
        # 5. At most one payout per payment, for exactly the share.
        payouts = list(Payout.objects.filter(transaction=payment))
        assert len(payouts) == (1 if payment.driver_share > 0 else 0)
        if payouts:
            assert payouts[0].amount == payment.driver_share
    # 7. Every confirmation is stored and none is left unprocessed.
    left = Callback.objects.filter(
        kind=CallbackKind.C2B_CONFIRMATION,
        state__in=[CallbackState.RECEIVED, CallbackState.FAILED],
    )
    assert not left.exists(), list(left.values("state", "error")[:3])
