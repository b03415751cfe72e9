"""Posting: the one path by which money reaches a driver's balance.

Lock the driver row, re-check, decide the business day, compute the split from the locked
balance, insert the transaction and its ledger entry, move the cached balance with F()
expressions, queue the payout, commit. A duplicate TransID is a no-op, whether it arrives after
or during the first.

A payment belongs to the business day in which it was received (stored and acknowledged), never
the one in which it happens to be posted: the day is decided from `received_at` under the
driver's lock, against the driver's closed days. When that day is still open but an earlier one
must close first and is not ready (a confirmation received before its cutoff is still being
posted), the posting rolls back, waits holding no lock, and tries again.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.db import atomic_with_retry
from tuktuk.core.money import ZERO, money
from tuktuk.fleet.assignments import driver_on_duty, drivers_vehicles_lock
from tuktuk.fleet.balance import driver_balance_credit
from tuktuk.fleet.models import OUT_OF_SERVICE, Driver, FleetSettings, Vehicle
from tuktuk.ledger import ports
from tuktuk.ledger.adjustments import adjustments_settle, repayment_allocate, repayment_recognised
from tuktuk.ledger.business_day import business_day_of
from tuktuk.ledger.day_close import DayCloseNotReady, day_close_readiness, driver_roll_to_day
from tuktuk.ledger.deposit_book import deposit_entry_add
from tuktuk.ledger.models import (
    DepositEntryKind,
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionSource,
    TransactionStatus,
    TransactionType,
)
from tuktuk.ledger.split import Split, split_payment

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncomingPayment:
    """A payment as M-Pesa reported it (C2B callback) or an operator recorded it."""

    trans_id: str
    amount: Decimal
    account_reference: str
    payer_msisdn: str = ""
    payer_name: str = ""
    mpesa_time: dt.datetime | None = None
    # When we stored it (a C2B callback's received_at); None: now, for what an operator records.
    received_at: dt.datetime | None = None


class PostingOutcome(StrEnum):
    POSTED = "posted"
    DUPLICATE = "duplicate"
    UNMATCHED = "unmatched"
    REPAYMENT = "repayment"
    SELF_PAYMENT = "self_payment"


@dataclass(frozen=True)
class PostingResult:
    outcome: PostingOutcome
    transaction: Transaction


# Called inside the posting transaction with its result, e.g. to mark the stored callback,
# so the callback's state commits (or rolls back) together with the money.
WithinPosting = Callable[[PostingResult], None]


def driver_split(*, driver: Driver, fleet: FleetSettings, amount: Decimal) -> Split:
    return split_payment(
        amount=amount,
        balance=driver.current_balance,
        target=driver.effective_target(fleet),
        percentage=driver.effective_percentage(fleet),
        sharing=driver.effective_sharing(fleet),
    )


_DRIVER_ID = re.compile(r"^DRV-[0-9]{6}$")


def is_driver_id(account: str) -> bool:
    """A canonical account reference shaped like a driver's id (DRV-112001)."""
    return bool(_DRIVER_ID.match(account))


class Resolved(NamedTuple):
    vehicle_pk: int | None
    driver_pk: int | None
    by_driver_id: bool
    vehicle_status: str = ""


def account_resolve(
    account_reference: str, *, at: dt.datetime | None = None, lock: bool = False
) -> Resolved:
    """Whom a payment to this account reference credits. A vehicle's account is credited to
    the driver on duty at `at` (the payment's M-Pesa time; default now): a substitute covering
    it, else its regular driver (fleet.assignments). An account reference that is a driver's id
    (DRV-112001) or alias (the legacy D112001) is the driver paying the fleet, not a passenger
    paying a vehicle; aliases are unique and never a vehicle's account.

    With `lock` (inside the posting's transaction) the vehicle row is locked first, so an
    operator's handover (which locks it too) and this fare are ordered: the fare sees the
    assignments as they are once the handover committed, or the handover sees the fare."""
    account = Vehicle.canonical_account(account_reference)
    if is_driver_id(account):
        by_id = Driver.objects.filter(driver_id=account, is_active=True).order_by()
        if driver_pk := by_id.values_list("pk", flat=True).first():
            if lock:
                drivers_vehicles_lock(driver_pks=[driver_pk])
            return Resolved(None, driver_pk, True)
    # order_by(): lookups on unique keys need no ORDER BY (Meta.ordering would add one).
    vehicles = Vehicle.objects.filter(mpesa_account=account, is_active=True).order_by()
    if lock:
        vehicles = vehicles.select_for_update()
    vehicle = vehicles.values_list("pk", "status").first()
    if vehicle is not None:
        on_duty = driver_on_duty(vehicle_pk=vehicle[0], moment=at or timezone.now())
        return Resolved(vehicle[0], on_duty, False, vehicle[1])
    # Not a vehicle's account: perhaps a driver's alias (looked up last, so a fare costs no
    # extra query; Driver.clean refuses an alias that is a vehicle's account).
    by_alias = Driver.objects.filter(account_alias=account, is_active=True).order_by()
    if driver_pk := by_alias.values_list("pk", flat=True).first():
        if lock:
            drivers_vehicles_lock(driver_pks=[driver_pk])
        return Resolved(None, driver_pk, True)
    return Resolved(None, None, False)


def _existing(trans_id: str) -> Transaction | None:
    return Transaction.objects.filter(trans_id=trans_id).order_by().first()


def transaction_fields(payment: IncomingPayment, source: str) -> dict[str, object]:
    return {
        "trans_id": payment.trans_id,
        "source": source,
        "account_reference": payment.account_reference[:64],
        "amount": money(payment.amount),
        "payer_msisdn": payment.payer_msisdn[:64],
        "payer_name": payment.payer_name[:150],
        "mpesa_time": payment.mpesa_time,
    }


def _posting_day(*, driver: Driver, received_day: dt.date, fleet: FleetSettings) -> dt.date:
    """The business day a payment received on `received_day` is credited to, for a locked
    driver row: its own day, closing the driver's earlier days first (DayCloseNotReady if one
    must wait); or the driver's open day when `received_day` is already closed (a confirmation
    that failed and was replayed after the close: closed days are never written to)."""
    driver_roll_to_day(driver=driver, day=received_day, fleet=fleet)
    assert driver.balance_day is not None  # set by the roll
    return driver.balance_day


def posting_apply(
    payment: IncomingPayment,
    source: str,
    within: WithinPosting | None,
    received: dt.datetime,
    *,
    fleet: FleetSettings | None = None,
    resolved: Resolved | None = None,
    existing_find: Callable[[str], Transaction | None] | None = None,
) -> PostingResult:
    """One payment's posting inside the caller's transaction: the money rules. `resolved`: the
    account already resolved under the vehicle's lock (the batching engine locks every row a
    batch needs up front, in a fixed order); `fleet`: the settings row already read;
    `existing_find`: the transaction already posted with a TransID (the batch reads them all
    at once, under its locks)."""
    existing_find = existing_find or _existing
    fleet = fleet or FleetSettings.load()
    received_day = business_day_of(received, fleet=fleet)
    if resolved is None:
        resolved = account_resolve(
            payment.account_reference, at=payment.mpesa_time or received, lock=True
        )
    vehicle_pk, driver_pk, by_driver_id, vehicle_status = resolved
    driver = None
    if driver_pk is not None:
        driver = Driver.objects.select_for_update().get(pk=driver_pk)
        if not driver.is_active:  # terminated since it was looked up: nobody's fare now
            driver = None
    if driver is None:
        existing = existing_find(payment.trans_id)
        if existing is not None:
            result = PostingResult(PostingOutcome.DUPLICATE, existing)
        else:
            # Uncaptured: kept until an operator assigns it; the unique TransID guards it.
            unmatched = Transaction.objects.create(
                **transaction_fields(payment, source),
                status=TransactionStatus.UNMATCHED,
                transaction_type=TransactionType.PAYMENT,
                vehicle_id=vehicle_pk,
                received_at=received,
            )
            result = PostingResult(PostingOutcome.UNMATCHED, unmatched)
    else:
        # Checked under the lock: a concurrent delivery of the same TransID has committed.
        existing = existing_find(payment.trans_id)
        if existing is not None:
            result = PostingResult(PostingOutcome.DUPLICATE, existing)
        elif by_driver_id:
            day = _posting_day(driver=driver, received_day=received_day, fleet=fleet)
            paid = self_payment_post(
                driver=driver,
                fleet=fleet,
                day=day,
                fields={**transaction_fields(payment, source), "received_at": received},
            )
            result = PostingResult(PostingOutcome.SELF_PAYMENT, paid)
        elif repayment_recognised(driver=driver, payment=payment):
            day = _posting_day(driver=driver, received_day=received_day, fleet=fleet)
            repayment = Transaction.objects.create(
                **transaction_fields(payment, source),
                status=TransactionStatus.COMPLETED,
                transaction_type=TransactionType.DRIVER_REPAYMENT,
                driver=driver,
                received_at=received,
                business_day=day,
            )
            repayment_allocate(driver=driver, repayment=repayment)
            result = PostingResult(PostingOutcome.REPAYMENT, repayment)
        else:
            day = _posting_day(driver=driver, received_day=received_day, fleet=fleet)
            split = driver_split(driver=driver, fleet=fleet, amount=payment.amount)
            posted = Transaction.objects.create(
                **transaction_fields(payment, source),
                status=TransactionStatus.COMPLETED,
                transaction_type=TransactionType.PAYMENT,
                driver=driver,
                vehicle_id=vehicle_pk,
                driver_share=split.driver_share,
                target_contribution=split.target_contribution,
                received_at=received,
                business_day=day,
            )
            driver_credit(driver=driver, fleet=fleet, day=day, posted=posted, split=split)
            result = PostingResult(PostingOutcome.POSTED, posted)
            if vehicle_status in OUT_OF_SERVICE:
                # The money arrived, so it posts; an operator should know the vehicle was
                # meant to be off the road.
                events.event_record(
                    title=events.EventTitle.FARE_ON_UNAVAILABLE_VEHICLE,
                    level=events.EventLevel.WARNING,
                    driver=driver,
                    message=f"TransID {payment.trans_id}: {payment.amount} KSH paid to a "
                    f"vehicle marked {vehicle_status}",
                    data={"trans_id": payment.trans_id, "vehicle_status": vehicle_status},
                )
    if result.outcome is PostingOutcome.DUPLICATE:
        _redelivery_count(result.transaction, source)
    if within is not None:
        within(result)
    return result


def _redelivery_count(existing: Transaction, source: str) -> None:
    """Count M-Pesa delivering a posted TransID again (reconciliation shows it as information).
    An operator's record of a payment the webhook had delivered meanwhile is no redelivery."""
    if source == TransactionSource.C2B:
        Transaction.objects.filter(pk=existing.pk).update(redeliveries=F("redeliveries") + 1)


def driver_credit(
    *, driver: Driver, fleet: FleetSettings, day: dt.date, posted: Transaction, split: Split
) -> None:
    """The money side of a completed payment, for a driver row the caller has locked and
    rolled to `day`: its contribution entry, the cached balance, the payout row."""
    LedgerEntry.objects.create(
        driver=driver,
        business_day=day,
        kind=EntryKind.CONTRIBUTION,
        amount=split.target_contribution,
        transaction=posted,
    )
    driver_balance_credit(
        driver_pk=driver.pk,
        target=driver.effective_target(fleet),
        amount=split.target_contribution,
        balance_day=day,
    )
    if split.driver_share > 0:
        ports.payout_outbox().share_queue(
            transaction=posted,
            driver=driver,
            amount=split.driver_share,
            instant=driver.effective_instant_payout(fleet),
        )


def self_payment_post(
    *, driver: Driver, fleet: FleetSettings, day: dt.date, fields: dict[str, object]
) -> Transaction:
    """The driver paying the fleet (their id as the account), for a driver row the caller has
    locked and rolled to `day`: first today's left-to-target (a contribution entry), then open
    adjustments, oldest first, then the rest tops up the deposit. No share, no payout."""
    amount = money(fields["amount"])  # type: ignore[arg-type]
    left_to_target = max(ZERO, driver.effective_target(fleet) - driver.current_balance)
    to_target = min(amount, left_to_target)
    paid = Transaction.objects.create(
        **fields,
        status=TransactionStatus.COMPLETED,
        transaction_type=TransactionType.SELF_PAYMENT,
        driver=driver,
        target_contribution=to_target,
        business_day=day,
    )
    driver_credit(
        driver=driver,
        fleet=fleet,
        day=day,
        posted=paid,
        split=Split(driver_share=ZERO, target_contribution=to_target),
    )
    to_adjustments = adjustments_settle(driver=driver, transaction=paid, amount=amount - to_target)
    to_deposit = amount - to_target - to_adjustments
    if to_deposit > 0:
        deposit_entry_add(
            driver=driver,
            kind=DepositEntryKind.TOP_UP,
            amount=to_deposit,
            reference=paid.trans_id,
            transaction=paid,
        )
    events.event_record(
        title=events.EventTitle.SELF_PAYMENT_RECEIVED,
        driver=driver,
        message=f"{paid.trans_id}: {amount} KSH from {driver.driver_id}: {to_target} to the "
        f"target, {to_adjustments} to adjustments, {to_deposit} to the deposit",
        data={
            "trans_id": paid.trans_id,
            "to_target": str(to_target),
            "to_adjustments": str(to_adjustments),
            "to_deposit": str(to_deposit),
        },
    )
    return paid


_CLOSE_POLL_SECONDS = 0.05


def _close_wait(waiting: DayCloseNotReady, *, deadline: float) -> None:
    """Wait, holding no lock, until the day that must close first is ready, or give up at the
    deadline by raising `waiting`. Polling: the confirmations it waits for are being posted by
    other requests, which commit without telling anyone (no portable wake-up across the three
    databases), and a few 50 ms polls around midnight cost nothing."""
    fleet = FleetSettings.load()
    while day_close_readiness(day=waiting.day, fleet=fleet) is not None:
        if time.monotonic() >= deadline:
            raise waiting
        time.sleep(_CLOSE_POLL_SECONDS)


def duplicate_record(
    existing: Transaction, source: str, within: WithinPosting | None
) -> PostingResult:
    result = PostingResult(PostingOutcome.DUPLICATE, existing)
    _redelivery_count(existing, source)
    if within is not None:
        within(result)
    return result


def payment_post(
    *,
    payment: IncomingPayment,
    source: str = TransactionSource.C2B,
    within: WithinPosting | None = None,
) -> PostingResult:
    """Credit a payment exactly once. Retries the whole transaction on transient DB errors, and
    after waiting (holding no lock) when an earlier day it must close is not ready yet; raises
    DayCloseNotReady if it is still not ready after POSTING_CLOSE_WAIT_SECONDS."""
    received = payment.received_at or timezone.now()
    deadline = time.monotonic() + settings.POSTING_CLOSE_WAIT_SECONDS
    try:
        while True:
            try:
                result = atomic_with_retry(
                    lambda: posting_apply(payment, source, within, received),
                    attempts=settings.POSTING_MAX_ATTEMPTS,
                    label="payment_post",
                )
                break
            except DayCloseNotReady as waiting:
                _close_wait(waiting, deadline=deadline)
    except IntegrityError:
        # Two deliveries of one TransID raced past the re-check (e.g. an unmatched account):
        # the unique constraint refused the second. Anything else is a real error.
        existing = Transaction.objects.filter(trans_id=payment.trans_id).first()
        if existing is None:
            raise
        with transaction.atomic():
            result = duplicate_record(existing, source, within)
    posting_events_record(payment=payment, result=result, received=received)
    return result


def posting_events_record(
    *,
    payment: IncomingPayment,
    result: PostingResult,
    received: dt.datetime,
    fleet: FleetSettings | None = None,
) -> None:
    """What an operator should hear about a posting: credited to a later day than received, a
    duplicate that credited nothing, a payment nobody's account matched."""
    credited = result.transaction
    received_day = business_day_of(received, fleet=fleet or FleetSettings.load())
    credits = (PostingOutcome.POSTED, PostingOutcome.REPAYMENT, PostingOutcome.SELF_PAYMENT)
    if result.outcome in credits and (credited.business_day != received_day):
        events.event_record(
            title=events.EventTitle.CREDITED_AFTER_CLOSE,
            level=events.EventLevel.WARNING,
            driver=credited.driver,
            message=f"TransID {payment.trans_id} was received on {received_day}, which had "
            f"already closed; credited to the open day {credited.business_day}",
            data={"trans_id": payment.trans_id, "received_at": received.isoformat()},
        )
    if result.outcome is PostingOutcome.DUPLICATE:
        events.event_record(
            title=events.EventTitle.DUPLICATE_PREVENTED,
            level=events.EventLevel.WARNING,
            driver=result.transaction.driver,
            message=f"TransID {payment.trans_id} was delivered again and credited nothing",
            data={"trans_id": payment.trans_id, "amount": str(payment.amount)},
        )
    elif result.outcome is PostingOutcome.UNMATCHED:
        events.event_record(
            title=events.EventTitle.UNMATCHED_PAYMENT,
            level=events.EventLevel.WARNING,
            message=f"TransID {payment.trans_id}: account {payment.account_reference!r} "
            "matches no driver; kept as an uncaptured payment",
            data={"trans_id": payment.trans_id, "amount": str(payment.amount)},
        )
