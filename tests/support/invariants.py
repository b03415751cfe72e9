"""The invariants of docs/design.md section 4, checked against the database after a run."""

from __future__ import annotations

from collections import Counter

from django.db.models import Count, Sum

from tuktuk.core.models import Event, EventTitle
from tuktuk.core.money import ZERO
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.business_day import business_day_of
from tuktuk.ledger.models import (
    DayClose,
    DepositEntry,
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from tuktuk.ledger.payment_status import CONTRIBUTING_TYPES
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
    # 3. Every completed payment (and self-payment): exactly one contribution entry equal to
    #    its contribution.
    payments = Transaction.objects.filter(
        status=TransactionStatus.COMPLETED, transaction_type__in=CONTRIBUTING_TYPES
    ).annotate(entries=Count("entry"))
    for payment in payments.select_related("entry"):
        assert payment.entries == 1, payment.trans_id
        assert payment.entry.kind == EntryKind.CONTRIBUTION
        assert payment.entry.amount == payment.target_contribution
        assert payment.entry.business_day == payment.business_day
        assert payment.driver_share >= 0 and payment.target_contribution >= 0
        if payment.transaction_type == TransactionType.SELF_PAYMENT:
            # Its parts add up: target + adjustments + deposit; no share, no payout.
            to_adjustments = payment.repayment_allocations.aggregate(s=Sum("amount"))["s"]
            to_deposit = payment.deposit_entries.aggregate(s=Sum("amount"))["s"]
            assert payment.amount == payment.target_contribution + (to_adjustments or ZERO) + (
                to_deposit or ZERO
            ), payment.trans_id
            assert payment.driver_share == 0
        else:
            # 4. A = share + contribution.
            assert payment.amount == payment.driver_share + payment.target_contribution
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
    # 8. A payment is credited to the business day in which it was received; only one whose
    #    day had already closed (a visible failure replayed later) goes to the open day, with an
    #    event saying so. And no entry lands on a day after it closed.
    fleet = FleetSettings.load()
    late = {
        event.data.get("trans_id")
        for event in Event.objects.filter(title=EventTitle.CREDITED_AFTER_CLOSE)
    }
    credited = Transaction.objects.filter(status=TransactionStatus.COMPLETED)
    # (An uncaptured payment is credited on the day an operator assigns it.)
    for tx in credited.exclude(transaction_type=TransactionType.ADJUSTMENT).filter(assignment=""):
        received_day = business_day_of(tx.received_at, fleet=fleet)
        if tx.trans_id in late:
            assert tx.business_day is not None and tx.business_day > received_day, tx.trans_id
        else:
            assert tx.business_day == received_day, (tx.trans_id, tx.received_at, tx.business_day)
    # 9. Each deposit is the sum of its entries, numbered 1..n, never below zero.
    for driver_pk in DepositEntry.objects.values_list("driver_id", flat=True).distinct():
        running = ZERO
        rows = DepositEntry.objects.filter(driver_id=driver_pk).order_by("seq")
        for number, entry in enumerate(rows, start=1):
            running += entry.amount
            assert entry.seq == number and entry.balance_after == running >= 0, entry
    for close in DayClose.objects.all():
        total = LedgerEntry.objects.filter(
            driver_id=close.driver_id, business_day=close.business_day
        ).aggregate(s=Sum("amount"))["s"]
        assert close.closing_balance == (total or ZERO), (close.driver_id, close.business_day)
