"""Missed payments: a fare M-Pesa took but the webhook never delivered, recorded by an
operator with its receipt and posted through the very same posting path. If the webhook
delivers the same TransID later, that delivery is a duplicate no-op.

With Daraja credentials configured, the receipt is verified first with the Transaction Status
query; the answer arrives as a callback and posts (or rejects) the record.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.dates import moment_parse
from tuktuk.core.errors import InvalidInput, require_reason
from tuktuk.core.money import operator_amount
from tuktuk.fleet.models import Vehicle
from tuktuk.fleet.phone import InvalidPhoneNumber, normalize_msisdn
from tuktuk.ledger import ports
from tuktuk.ledger.models import (
    MissedPayment,
    MissedPaymentState,
    Transaction,
    TransactionSource,
)
from tuktuk.ledger.services import IncomingPayment, PostingOutcome, payment_post

OCCASION_PREFIX = "MISSED-"
_RECEIPT = re.compile(r"^[A-Z0-9]{8,20}$")


def missed_time_check(value: str | dt.datetime) -> dt.datetime:
    """The M-Pesa time of a missed payment as typed: YYYYMMDDHHMMSS or ISO 8601 (local time
    unless an offset is given), never in the future."""
    moment = moment_parse(value, name="time")
    if moment > timezone.now() + dt.timedelta(minutes=5):
        raise InvalidInput(f"time {value} is in the future")
    return moment


@dataclass(frozen=True)
class MissedPaymentInput:
    trans_id: str
    amount: Decimal
    msisdn: str
    mpesa_time: dt.datetime
    vehicle: Vehicle
    reason: str


def missed_payment_check(
    *,
    trans_id: str,
    amount: str,
    msisdn: str,
    mpesa_time: str | dt.datetime,
    vehicle_id: str,
    reason: str,
) -> MissedPaymentInput:
    """Everything an operator typed, checked (InvalidInput), before anything is written: the
    admin form shows these errors on the form."""
    trans_id = trans_id.strip().upper()
    if not _RECEIPT.match(trans_id):
        raise InvalidInput(f"{trans_id!r} is not an M-Pesa receipt number")
    value = operator_amount(amount)
    try:
        payer = normalize_msisdn(msisdn)
    except InvalidPhoneNumber as exc:
        raise InvalidInput(str(exc)) from exc
    when = missed_time_check(mpesa_time)
    reason = require_reason(reason)
    vehicle = Vehicle.objects.filter(vehicle_id=vehicle_id.strip()).first()
    if vehicle is None:
        raise InvalidInput(f"no vehicle {vehicle_id!r}")
    if Transaction.objects.filter(trans_id=trans_id).exists():
        raise InvalidInput(f"TransID {trans_id} is already used")
    return MissedPaymentInput(
        trans_id=trans_id,
        amount=value,
        msisdn=payer,
        mpesa_time=when,
        vehicle=vehicle,
        reason=reason,
    )


def missed_payment_record(
    *,
    trans_id: str,
    amount: str,
    msisdn: str,
    mpesa_time: str | dt.datetime,
    vehicle_id: str,
    reason: str,
    actor: str,
    verifier: ports.ReceiptVerifier | None = None,
) -> MissedPayment:
    checked = missed_payment_check(
        trans_id=trans_id,
        amount=amount,
        msisdn=msisdn,
        mpesa_time=mpesa_time,
        vehicle_id=vehicle_id,
        reason=reason,
    )
    trans_id, value, payer, when = (
        checked.trans_id,
        checked.amount,
        checked.msisdn,
        checked.mpesa_time,
    )
    vehicle, reason = checked.vehicle, checked.reason
    own_verifier = verifier is None
    verifier = verifier or ports.receipt_verifier()
    verify = verifier is not None
    try:
        record = MissedPayment.objects.create(
            trans_id=trans_id,
            amount=value,
            msisdn=payer,
            mpesa_time=when,
            vehicle=vehicle,
            reason=reason,
            recorded_by=actor,
            state=MissedPaymentState.VERIFYING,
        )
    except IntegrityError as exc:
        raise InvalidInput(f"TransID {trans_id} was already recorded") from exc
    events.event_record(
        title=events.EventTitle.MISSED_RECORDED,
        actor=actor,
        message=f"{trans_id} {value} KSH for {vehicle.vehicle_id}: {reason}",
        data={"trans_id": trans_id, "verify": verify},
    )
    if verifier is None:
        return missed_payment_post(record=record)
    # Network call outside any transaction; the answer arrives as a status-result callback.
    try:
        refused = verifier.receipt_query(trans_id=trans_id, occasion=f"{OCCASION_PREFIX}{trans_id}")
    finally:
        if own_verifier:
            verifier.close()
    if refused is not None:
        MissedPayment.objects.filter(pk=record.pk).update(
            detail=f"status query not accepted yet: {refused}"[:2000]
        )
    record.refresh_from_db()
    return record


def missed_payment_post(*, record: MissedPayment) -> MissedPayment:
    result = payment_post(
        payment=IncomingPayment(
            trans_id=record.trans_id,
            amount=record.amount,
            account_reference=record.vehicle.mpesa_account,
            payer_msisdn=record.msisdn,
            mpesa_time=record.mpesa_time,
        ),
        source=TransactionSource.MISSED,
    )
    detail = (
        "the webhook had delivered it meanwhile"
        if result.outcome is PostingOutcome.DUPLICATE
        else f"posted ({result.outcome})"
    )
    MissedPayment.objects.filter(pk=record.pk).update(
        state=MissedPaymentState.POSTED, transaction=result.transaction, detail=detail
    )
    record.refresh_from_db()
    return record


def missed_payment_verified(
    *, trans_id: str, completed: bool, amount: object, detail: str
) -> MissedPayment | None:
    """Apply the status query's answer to a record waiting for it (idempotent)."""
    record = MissedPayment.objects.filter(
        trans_id=trans_id, state=MissedPaymentState.VERIFYING
    ).first()
    if record is None:
        return None
    try:
        same_amount = amount is not None and operator_amount(str(amount)) == record.amount
    except InvalidInput:
        same_amount = False
    if completed and same_amount:
        return missed_payment_post(record=record)
    why = detail if not completed else f"M-Pesa reports {amount} KSH, not {record.amount}"
    if MissedPayment.objects.filter(pk=record.pk, state=MissedPaymentState.VERIFYING).update(
        state=MissedPaymentState.REJECTED, detail=why[:2000]
    ):
        events.event_record(
            title=events.EventTitle.MISSED_REJECTED,
            level=events.EventLevel.WARNING,
            actor=record.recorded_by,
            message=f"{trans_id}: {why}",
            data={"trans_id": trans_id},
        )
    record.refresh_from_db()
    return record
