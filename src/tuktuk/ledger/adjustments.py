"""Adjustments (debts a driver owes the fleet) and the Driver Repayments that settle them.

They never touch the target balance. A payment is a repayment only when it is clearly the
driver's: paid with the account reference set to the driver's id, or from the driver's own
number for exactly what an open adjustment still owes. (The legacy rule matched on amount
alone and could swallow a passenger's fare.)
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.errors import require_reason
from tuktuk.core.money import ZERO, money, operator_amount
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.fleet.phone import InvalidPhoneNumber, normalize_msisdn
from tuktuk.fleet.selectors import driver_get
from tuktuk.ledger.business_day import business_day_of
from tuktuk.ledger.models import (
    Adjustment,
    AdjustmentRepayment,
    AdjustmentState,
    Transaction,
    TransactionSource,
    TransactionStatus,
    TransactionType,
)

if TYPE_CHECKING:
    from tuktuk.ledger.services import IncomingPayment


def adjustment_add(*, driver_id: str, amount: Decimal | str, reason: str, actor: str) -> Adjustment:
    """Record a debt the driver owes (e.g. an overpayment). The target balance is untouched."""
    amount = operator_amount(amount)
    reason = require_reason(reason)
    driver = driver_get(ref=driver_id)
    now = timezone.now()
    with transaction.atomic():
        record = Transaction.objects.create(
            trans_id=f"ADJ-{uuid.uuid4().hex[:12].upper()}",
            transaction_type=TransactionType.ADJUSTMENT,
            status=TransactionStatus.COMPLETED,
            source=TransactionSource.OPERATOR,
            driver=driver,
            amount=amount,
            received_at=now,
            business_day=business_day_of(now, fleet=FleetSettings.load()),
            note=reason[:255],
            assigned_by=actor,
        )
        adjustment = Adjustment.objects.create(
            driver=driver, transaction=record, amount=amount, description=reason, created_by=actor
        )
    events.event_record(
        title=events.EventTitle.ADJUSTMENT_RECORDED,
        driver=driver,
        actor=actor,
        message=f"{driver.driver_id} owes {amount} KSH: {reason}",
        data={"adjustment": adjustment.pk, "amount": str(amount)},
    )
    return adjustment


def paid_from_own_number(*, driver: Driver, payment: IncomingPayment) -> bool:
    """The payer is provably the driver (a masked or hashed MSISDN is not)."""
    try:
        return normalize_msisdn(payment.payer_msisdn) == driver.mpesa_number
    except InvalidPhoneNumber:
        return False


def repayment_recognised(*, driver: Driver, payment: IncomingPayment) -> bool:
    """From the driver's own number, for exactly what one open adjustment still owes."""
    if not paid_from_own_number(driver=driver, payment=payment):
        return False
    return Adjustment.objects.filter(
        driver=driver,
        state=AdjustmentState.OPEN,
        amount=F("repaid") + money(payment.amount),
    ).exists()


def adjustments_settle(*, driver: Driver, transaction: Transaction, amount: Decimal) -> Decimal:
    """Apply `amount` of `transaction` to the driver's open adjustments, oldest first (the
    caller holds the driver row lock). Returns what it settled."""
    left = amount
    for adjustment in Adjustment.objects.filter(driver=driver, state=AdjustmentState.OPEN):
        if left <= 0:
            break
        take = min(adjustment.outstanding, left)
        AdjustmentRepayment.objects.create(
            adjustment=adjustment, transaction=transaction, amount=take
        )
        Adjustment.objects.filter(pk=adjustment.pk).update(repaid=F("repaid") + take)
        Adjustment.objects.filter(pk=adjustment.pk, repaid=F("amount")).update(
            state=AdjustmentState.SETTLED, settled_at=timezone.now()
        )
        left -= take
    return amount - left


def adjustments_outstanding(*, driver_pk: int) -> Decimal:
    total = Adjustment.objects.filter(driver_id=driver_pk, state=AdjustmentState.OPEN).aggregate(
        owed=Sum(F("amount") - F("repaid"))
    )["owed"]
    return money(total or ZERO)


def repayment_allocate(*, driver: Driver, repayment: Transaction) -> Decimal:
    """Apply a repayment to the driver's open adjustments, oldest first (the caller holds the
    driver row lock). Returns what was left over after every debt was settled."""
    left = repayment.amount - adjustments_settle(
        driver=driver, transaction=repayment, amount=repayment.amount
    )
    events.event_record(
        title=events.EventTitle.REPAYMENT_RECEIVED,
        driver=driver,
        message=f"{repayment.trans_id}: {repayment.amount} KSH repaid"
        + (f", {left} KSH more than the open debts" if left > ZERO else ""),
        data={"trans_id": repayment.trans_id, "unallocated": str(left)},
    )
    return left
