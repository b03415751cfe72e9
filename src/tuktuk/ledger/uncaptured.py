"""Uncaptured payments (an account number that matched no driver), assigned by an operator.

*send share*: processed like a normal payment (split and payout). *deposit share*: the whole
amount counts toward the target, no payout. Each can be assigned once: the compare-and-swap on
the Unmatched status decides between two operators assigning at the same moment.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.db import atomic_with_retry
from tuktuk.core.errors import InvalidInput, require_reason
from tuktuk.core.money import ZERO
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.fleet.selectors import driver_get
from tuktuk.ledger.business_day import business_day_of
from tuktuk.ledger.day_close import driver_roll_to_day
from tuktuk.ledger.models import Transaction, TransactionStatus, TransactionType
from tuktuk.ledger.services import driver_credit, driver_split
from tuktuk.ledger.split import Split

SEND_SHARE = "send_share"
DEPOSIT_SHARE = "deposit_share"


def uncaptured_list() -> list[Transaction]:
    return list(
        Transaction.objects.filter(status=TransactionStatus.UNMATCHED).order_by("received_at")
    )


def uncaptured_assign(
    *, trans_id: str, driver_id: str, mode: str, reason: str, actor: str
) -> Transaction:
    if mode not in (SEND_SHARE, DEPOSIT_SHARE):
        raise InvalidInput("choose send share or deposit share")
    reason = require_reason(reason)
    driver = driver_get(ref=driver_id)
    if not Transaction.objects.filter(trans_id=trans_id).exists():
        raise InvalidInput(f"no payment with TransID {trans_id!r}")

    def assign() -> Transaction:
        fleet = FleetSettings.load()
        now = timezone.now()
        day = business_day_of(now, fleet=fleet)
        locked = Driver.objects.select_for_update().get(pk=driver.pk)
        driver_roll_to_day(driver=locked, day=day, fleet=fleet)
        payment = Transaction.objects.get(trans_id=trans_id)
        if mode == SEND_SHARE:
            split = driver_split(driver=locked, fleet=fleet, amount=payment.amount)
        else:
            split = Split(driver_share=ZERO, target_contribution=payment.amount)
        # The CAS: only an Unmatched payment can be assigned, and only once.
        won = Transaction.objects.filter(pk=payment.pk, status=TransactionStatus.UNMATCHED).update(
            status=TransactionStatus.COMPLETED,
            transaction_type=TransactionType.PAYMENT,
            driver=locked,
            driver_share=split.driver_share,
            target_contribution=split.target_contribution,
            business_day=day,
            assignment=mode,
            assigned_by=actor,
            assigned_at=now,
            note=reason[:255],
        )
        if not won:
            raise InvalidInput(f"{trans_id} is not an unassigned uncaptured payment")
        payment.refresh_from_db()
        driver_credit(driver=locked, fleet=fleet, day=day, posted=payment, split=split)
        return payment

    assigned = atomic_with_retry(
        assign, attempts=settings.POSTING_MAX_ATTEMPTS, label="uncaptured_assign"
    )
    events.event_record(
        title=events.EventTitle.UNCAPTURED_ASSIGNED,
        driver=driver,
        actor=actor,
        message=f"{trans_id} ({assigned.amount} KSH) assigned as {mode.replace('_', ' ')}: "
        f"{reason}",
        data={"trans_id": trans_id, "mode": mode},
    )
    return assigned
