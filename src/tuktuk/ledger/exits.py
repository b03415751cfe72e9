"""A driver leaving the fleet: termination, the deposit refund, archive and restore; and the
legacy "Reset Consecutive Misses".

Terminating frees the vehicle and stops posting to the driver (their vehicle's payments go to
whoever is assigned next, or stay uncaptured) and proposes a refund: the deposit minus open
debts, each shown. A fleet manager approves refunds (one or many); the approval computes the
figures again under the driver's lock, settles the debts from the deposit (carried target debt
as a Target Deduction into the open day, open adjustments as a repayment), and queues the rest,
in whole shillings, as a B2C payout with its own originator id: exactly once, however often it
is approved or the worker restarts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.db import atomic_with_retry
from tuktuk.core.errors import Conflict, InvalidInput, NotFound, OperatorError, require_reason
from tuktuk.core.money import ZERO, format_ksh, whole_shillings_down
from tuktuk.fleet.assignments import assignments_sync
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.fleet.selectors import driver_get
from tuktuk.ledger import ports
from tuktuk.ledger.adjustments import adjustments_outstanding, adjustments_settle
from tuktuk.ledger.day_close import current_business_day, driver_roll_to_day
from tuktuk.ledger.deposit_book import deposit_balance, deposit_entry_add
from tuktuk.ledger.deposits import RETRIES, deposit_to_target, driver_locked
from tuktuk.ledger.models import (
    Decision,
    DepositEntryKind,
    DepositRefund,
    Transaction,
    TransactionSource,
    TransactionStatus,
    TransactionType,
)


@dataclass(frozen=True)
class RefundFigures:
    deposit_balance: Decimal
    target_debt: Decimal
    adjustments_debt: Decimal

    @property
    def to_target(self) -> Decimal:
        return min(self.target_debt, self.deposit_balance)

    @property
    def to_adjustments(self) -> Decimal:
        return min(self.adjustments_debt, self.deposit_balance - self.to_target)

    @property
    def refund(self) -> Decimal:
        """What is left after the debts, in whole shillings (B2C pays no cents; the cents
        stay in the deposit, visible)."""
        return whole_shillings_down(self.deposit_balance - self.to_target - self.to_adjustments)


def refund_figures(*, driver: Driver) -> RefundFigures:
    return RefundFigures(
        deposit_balance=deposit_balance(driver_pk=driver.pk),
        # The carried debt not yet worked off: a negative balance on the open day.
        target_debt=max(ZERO, -driver.current_balance),
        adjustments_debt=adjustments_outstanding(driver_pk=driver.pk),
    )


def driver_terminate(*, driver_id: str, reason: str, actor: str) -> DepositRefund:
    """End a driver's engagement and propose their refund for a fleet manager to approve."""
    reason = require_reason(reason)
    driver = driver_get(ref=driver_id)

    def terminate() -> DepositRefund:
        locked = driver_locked(driver.pk)
        if locked.terminated_at is not None:
            raise Conflict(f"{locked.driver_id} is already terminated")
        Driver.objects.filter(pk=locked.pk).update(
            is_active=False, vehicle=None, terminated_at=timezone.now(), updated_at=timezone.now()
        )
        assignments_sync(driver_pks=[locked.pk])  # frees the vehicle from now on
        figures = refund_figures(driver=locked)
        return DepositRefund.objects.create(
            driver=locked,
            deposit_balance=figures.deposit_balance,
            target_debt=figures.target_debt,
            adjustments_debt=figures.adjustments_debt,
            amount=figures.refund,
            requested_by=actor,
            reason=reason,
        )

    refund = atomic_with_retry(terminate, attempts=RETRIES, label="driver_terminate")
    events.event_record(
        title=events.EventTitle.DRIVER_TERMINATED,
        level=events.EventLevel.WARNING,
        driver=driver,
        actor=actor,
        message=f"{driver.driver_id} terminated: {reason}. Refund proposed: deposit "
        f"{format_ksh(refund.deposit_balance)} − target debt {format_ksh(refund.target_debt)} − "
        f"adjustments {format_ksh(refund.adjustments_debt)} = {format_ksh(refund.amount)} KSH",
        data={"refund": refund.pk, "amount": str(refund.amount)},
    )
    return refund


def _refund_approve(refund_id: int, actor: str, fleet: FleetSettings) -> DepositRefund:
    refund = DepositRefund.objects.filter(pk=refund_id).first()
    if refund is None:
        raise NotFound(f"no refund {refund_id}")

    def approve() -> DepositRefund:
        driver = driver_locked(refund.driver_id)
        current = DepositRefund.objects.get(pk=refund_id)
        if current.state != Decision.PROPOSED:
            raise Conflict(f"refund {refund_id} is already {current.state}")
        if driver.terminated_at is None:
            raise Conflict(f"{driver.driver_id} was restored; the refund no longer applies")
        figures = refund_figures(driver=driver)
        if figures.to_target > 0:
            deposit_to_target(
                driver=driver,
                fleet=fleet,
                amount=figures.to_target,
                reference=f"refund {refund_id}: carried target debt",
                actor=actor,
            )
        if figures.to_adjustments > 0:
            settling = Transaction.objects.create(
                trans_id=f"DEP-REFUND-{refund_id}",
                transaction_type=TransactionType.DRIVER_REPAYMENT,
                status=TransactionStatus.COMPLETED,
                source=TransactionSource.OPERATOR,
                driver=driver,
                amount=figures.to_adjustments,
                received_at=timezone.now(),
                business_day=driver.balance_day,
                note=f"open adjustments paid from the deposit (refund {refund_id})",
                assigned_by=actor,
            )
            adjustments_settle(driver=driver, transaction=settling, amount=settling.amount)
            deposit_entry_add(
                driver=driver,
                kind=DepositEntryKind.ADJUSTMENT,
                amount=-figures.to_adjustments,
                reference=f"refund {refund_id}: open adjustments ({settling.trans_id})",
                actor=actor,
                transaction=settling,
            )
        if figures.refund > 0:
            deposit_entry_add(
                driver=driver,
                kind=DepositEntryKind.REFUND,
                amount=-figures.refund,
                reference=f"refund {refund_id} by M-Pesa B2C",
                actor=actor,
            )
            ports.payout_outbox().refund_queue(refund=current, driver=driver, amount=figures.refund)
        DepositRefund.objects.filter(pk=refund_id, state=Decision.PROPOSED).update(
            state=Decision.APPROVED,
            deposit_balance=figures.deposit_balance,
            target_debt=figures.target_debt,
            adjustments_debt=figures.adjustments_debt,
            amount=figures.refund,
            decided_by=actor,
            decided_at=timezone.now(),
        )
        current.refresh_from_db()
        return current

    approved = atomic_with_retry(approve, attempts=RETRIES, label="refund_approve")
    events.event_record(
        title=events.EventTitle.REFUND_APPROVED,
        driver=approved.driver,
        actor=actor,
        message=f"{approved.driver.driver_id}: refund of {format_ksh(approved.amount)} KSH "
        f"approved (deposit {format_ksh(approved.deposit_balance)}, target debt "
        f"{format_ksh(approved.target_debt)}, adjustments {format_ksh(approved.adjustments_debt)})",
        data={"refund": approved.pk, "amount": str(approved.amount)},
    )
    return approved


@dataclass(frozen=True)
class RefundDecision:
    refund_id: int
    refund: DepositRefund | None
    # Why it was not approved: the error itself, so each edge maps its kind the usual way.
    refused: OperatorError | None = None

    @property
    def error(self) -> str:
        return str(self.refused) if self.refused is not None else ""


def refunds_approve(*, refund_ids: list[int], actor: str) -> list[RefundDecision]:
    """Approve several refunds, each in its own transaction; one that cannot be approved is
    reported and does not stop the others."""
    if not refund_ids:
        raise InvalidInput("name at least one refund")
    fleet = FleetSettings.load()
    decisions = []
    for refund_id in refund_ids:
        try:
            decisions.append(RefundDecision(refund_id, _refund_approve(refund_id, actor, fleet)))
        except OperatorError as exc:
            decisions.append(RefundDecision(refund_id, None, exc))
    return decisions


def refund_reject(*, refund_id: int, reason: str, actor: str) -> DepositRefund:
    reason = require_reason(reason)
    updated = DepositRefund.objects.filter(pk=refund_id, state=Decision.PROPOSED).update(
        state=Decision.REJECTED, decided_by=actor, decided_at=timezone.now(), reason=reason
    )
    refund = DepositRefund.objects.filter(pk=refund_id).select_related("driver").first()
    if refund is None:
        raise NotFound(f"no refund {refund_id}")
    if not updated:
        raise Conflict(f"refund {refund_id} is already {refund.state}")
    events.event_record(
        title=events.EventTitle.REFUND_REJECTED,
        driver=refund.driver,
        actor=actor,
        message=f"{refund.driver.driver_id}: refund {refund_id} rejected: {reason}",
        data={"refund": refund_id},
    )
    return refund


def driver_archive(*, driver_id: str, actor: str) -> Driver:
    """Hide a terminated driver from the everyday lists; nothing about their money changes."""
    driver = driver_get(ref=driver_id)
    updated = Driver.objects.filter(
        pk=driver.pk, terminated_at__isnull=False, archived_at__isnull=True
    ).update(archived_at=timezone.now())
    if not updated:
        raise Conflict(
            f"{driver.driver_id} is {driver.status}: only a terminated driver is archived"
        )
    events.event_record(
        title=events.EventTitle.DRIVER_ARCHIVED, driver=driver, actor=actor, message=driver.name
    )
    driver.refresh_from_db()
    return driver


def driver_restore(*, driver_id: str, reason: str, actor: str) -> Driver:
    """Bring a terminated (or archived) driver back with the balances they left with: the days
    they were away close as paused (no miss, no new debt; what they owed is carried), their
    deposit and adjustments are as they were. A refund still waiting is withdrawn."""
    reason = require_reason(reason)
    driver = driver_get(ref=driver_id)
    fleet = FleetSettings.load()

    def restore() -> list[dt.date]:
        locked = driver_locked(driver.pk)
        if locked.terminated_at is None:
            raise Conflict(f"{locked.driver_id} is {locked.status}, not terminated")
        closes = driver_roll_to_day(
            driver=locked, day=current_business_day(fleet), fleet=fleet, paused=True
        )
        Driver.objects.filter(pk=locked.pk).update(
            is_active=True, terminated_at=None, archived_at=None, updated_at=timezone.now()
        )
        DepositRefund.objects.filter(driver=locked, state=Decision.PROPOSED).update(
            state=Decision.REJECTED,
            decided_by=actor,
            decided_at=timezone.now(),
            reason=f"driver restored: {reason}",
        )
        return [close.business_day for close in closes]

    paused_days = atomic_with_retry(restore, attempts=RETRIES, label="driver_restore")
    events.event_record(
        title=events.EventTitle.DRIVER_RESTORED,
        driver=driver,
        actor=actor,
        message=f"{driver.driver_id} restored: {reason}"
        + (f"; {len(paused_days)} day(s) away closed as paused" if paused_days else ""),
        data={"paused_days": [day.isoformat() for day in paused_days]},
    )
    driver.refresh_from_db()
    return driver


def driver_misses_reset(*, driver_id: str, reason: str, actor: str) -> Driver:
    """The legacy "Reset Consecutive Misses": zero the count and lift the review flag, with
    the reason and the previous count on record."""
    reason = require_reason(reason)
    driver = driver_get(ref=driver_id)

    def reset() -> tuple[int, bool]:
        locked = driver_locked(driver.pk)
        Driver.objects.filter(pk=locked.pk).update(
            consecutive_misses=0, flagged_for_review=False, updated_at=timezone.now()
        )
        return locked.consecutive_misses, locked.flagged_for_review

    misses, flagged = atomic_with_retry(reset, attempts=RETRIES, label="driver_misses_reset")
    events.event_record(
        title=events.EventTitle.MISSES_RESET,
        driver=driver,
        actor=actor,
        message=f"{driver.driver_id}: {misses} consecutive miss(es) reset"
        + (" and the review flag lifted" if flagged else "")
        + f": {reason}",
        data={"previous_misses": misses, "was_flagged": flagged},
    )
    driver.refresh_from_db()
    return driver
