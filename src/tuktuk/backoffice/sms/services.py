"""Driver SMS: queue, send exactly once, record what the provider said.

Sending copies the payout outbox (tuktuk.payouts.services): every state change is a
compare-and-swap (`filter(pk, state=…).update(…)`), and the network call happens between
transactions: claim one message (CAS queued → sending, committed) → call the gateway with no
transaction open → record the answer (CAS, committed). Messages are claimed one at a time, right
before their request, so a worker killed mid-request leaves exactly one message `sending`; after
TUKTUK_SMS_SENDING_STALE_SECONDS it becomes `unknown` and is never sent again by itself (the
provider may have it). A refusal (outage) puts the message back in the queue with a backoff;
after TUKTUK_SMS_ALERT_AFTER_ATTEMPTS refused attempts operators get one email.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from tuktuk.backoffice.sms.gateway import (
    SmsAccepted,
    SmsGateway,
    SmsRefused,
    SmsRejected,
    masked_phone,
)
from tuktuk.backoffice.sms.models import (
    TRANSACTIONAL_KINDS,
    DeliveryReport,
    SmsKind,
    SmsMessage,
    SmsState,
)
from tuktuk.backoffice.sms.texts import LOGIN_CODE_REDACTED, MAX_LENGTH
from tuktuk.core import events
from tuktuk.core.errors import Conflict, InvalidInput, NotFound, require_reason
from tuktuk.fleet.models import Driver
from tuktuk.fleet.phone import InvalidPhoneNumber, normalize_msisdn
from tuktuk.fleet.selectors import driver_get

logger = logging.getLogger(__name__)

TEXT_MAX = MAX_LENGTH


def _expiry(hours: float | None = None) -> dt.datetime:
    return timezone.now() + dt.timedelta(hours=hours or settings.SMS_EXPIRE_HOURS)


# Queueing ------------------------------------------------------------------------------------


def sms_queue(
    *,
    kind: SmsKind,
    phone: str,
    text: str,
    key: str,
    driver: Driver | None = None,
    actor: str = "",
    expires_at: dt.datetime | None = None,
) -> SmsMessage | None:
    """Queue one message; None when a message with this key exists already (derived twice).
    Writes one row: it may run inside the caller's transaction, it never talks to the network."""
    try:
        with transaction.atomic():  # savepoint: a duplicate key is not an error
            return SmsMessage.objects.create(
                kind=kind,
                driver=driver,
                phone=normalize_msisdn(phone),
                body=text[:TEXT_MAX],
                key=key[:150],
                expires_at=expires_at or _expiry(),
                created_by=actor,
            )
    except IntegrityError:
        if SmsMessage.objects.filter(key=key[:150]).exists():
            return None
        raise


def _text(text: str) -> str:
    cleaned = str(text or "").strip()
    if not cleaned:
        raise InvalidInput("the message is empty")
    if len(cleaned) > TEXT_MAX:
        raise InvalidInput(f"the message has {len(cleaned)} characters; at most {TEXT_MAX}")
    if any(ord(char) < 32 and char not in "\n" for char in cleaned):
        raise InvalidInput("the message holds control characters")
    return cleaned


def sms_send_to_driver(*, driver_id: str, text: str, actor: str) -> SmsMessage:
    """An operator's message to one driver (refused when the driver opted out of SMS)."""
    body = _text(text)
    driver = driver_get(ref=driver_id)
    if driver.sms_opt_out:
        raise Conflict(f"{driver.driver_id} opted out of SMS")
    try:
        phone = normalize_msisdn(driver.mpesa_number)
    except InvalidPhoneNumber as exc:
        raise InvalidInput(str(exc)) from exc
    message = sms_queue(
        kind=SmsKind.DIRECT,
        driver=driver,
        phone=phone,
        text=body,
        key=f"direct:{uuid.uuid4().hex}",
        actor=actor,
    )
    assert message is not None  # a fresh key
    events.event_record(
        title=events.EventTitle.SMS_QUEUED,
        driver=driver,
        actor=actor,
        message=f"SMS to {driver.driver_id} queued ({len(body)} characters)",
        data={"sms": message.pk, "kind": SmsKind.DIRECT},
    )
    return message


@dataclass(frozen=True)
class BroadcastResult:
    batch: str
    queued: int
    opted_out: list[str]
    not_active: list[str]


def sms_broadcast(
    *, text: str, actor: str, driver_ids: Iterable[str] | None = None
) -> BroadcastResult:
    """One message to every active driver (`driver_ids` None) or to the drivers named. Drivers
    who opted out, and (when named) drivers who are not active, are left out and listed."""
    body = _text(text)
    if driver_ids is None:
        drivers = list(Driver.objects.filter(is_active=True, terminated_at__isnull=True))
        not_active: list[str] = []
    else:
        named = list(dict.fromkeys(driver_ids))
        if not named:
            raise InvalidInput("name at least one driver, or broadcast to all")
        drivers = [driver_get(ref=ref) for ref in named]
        not_active = [d.driver_id for d in drivers if d.status != "active"]
        drivers = [d for d in drivers if d.status == "active"]
    opted_out = [d.driver_id for d in drivers if d.sms_opt_out]
    batch = uuid.uuid4().hex[:12]
    queued = 0
    with transaction.atomic():  # the whole broadcast is queued, or none of it
        for driver in drivers:
            if driver.sms_opt_out:
                continue
            queued += (
                sms_queue(
                    kind=SmsKind.BROADCAST,
                    driver=driver,
                    phone=driver.mpesa_number,
                    text=body,
                    key=f"broadcast:{batch}:{driver.pk}",
                    actor=actor,
                )
                is not None
            )
    events.event_record(
        title=events.EventTitle.SMS_QUEUED,
        actor=actor,
        message=f"broadcast {batch}: {queued} SMS queued"
        + (f", {len(opted_out)} opted out" if opted_out else "")
        + (f", {len(not_active)} not active" if not_active else ""),
        data={"batch": batch, "queued": queued, "opted_out": opted_out, "not_active": not_active},
    )
    return BroadcastResult(batch=batch, queued=queued, opted_out=opted_out, not_active=not_active)


def sms_retry(*, message_id: int, actor: str, reason: str) -> SmsMessage:
    """Send a failed or unknown message again, once an operator has decided to (an unknown one
    may already be on the driver's phone: that is the operator's call, never the worker's)."""
    reason = require_reason(reason)
    message = SmsMessage.objects.filter(pk=message_id).first()
    if message is None:
        raise NotFound(f"no SMS {message_id}")
    if message.kind == SmsKind.LOGIN_CODE:
        raise Conflict("a login code is never sent again: the driver asks for a new one")
    retried = SmsMessage.objects.filter(
        pk=message.pk, state__in=[SmsState.FAILED, SmsState.UNKNOWN]
    ).update(
        state=SmsState.QUEUED,
        next_attempt_at=None,
        expires_at=_expiry(),
        provider_message_id="",
        detail=f"queued again by {actor}: {reason}"[:2000],
        updated_at=timezone.now(),
    )
    if not retried:
        raise Conflict(
            f"SMS {message_id} is {message.state}; only failed or unknown ones are retried"
        )
    events.event_record(
        title=events.EventTitle.SMS_RETRIED,
        driver=message.driver,
        actor=actor,
        message=f"SMS {message.pk} ({message.kind}) queued again: {reason}",
        data={"sms": message.pk, "previous_state": message.state},
    )
    return SmsMessage.objects.get(pk=message.pk)


# Sending ---------------------------------------------------------------------------------------


def _transition(pk: int, *, from_states: Iterable[str], to_state: str, **fields: Any) -> bool:
    return (
        SmsMessage.objects.filter(pk=pk, state__in=list(from_states)).update(
            state=to_state, updated_at=timezone.now(), **fields
        )
        == 1
    )


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(300, 2 ** max(0, attempts - 1)))


def sms_due() -> QuerySet[SmsMessage]:
    now = timezone.now()
    return SmsMessage.objects.filter(state=SmsState.QUEUED, expires_at__gt=now).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )


def sms_claim(*, pk: int, worker: str) -> SmsMessage | None:
    """This worker's claim on one message, right before its request (CAS queued → sending)."""
    now = timezone.now()
    claimed = SmsMessage.objects.filter(pk=pk, state=SmsState.QUEUED).update(
        state=SmsState.SENDING,
        claimed_at=now,
        claimed_by=worker[:64],
        attempts=F("attempts") + 1,
        updated_at=now,
    )
    if not claimed:
        return None  # another worker has it
    return SmsMessage.objects.select_related("driver").get(pk=pk)


def sms_send(*, message: SmsMessage, gateway: SmsGateway) -> str:
    """Send one claimed message and record what the provider's answer tells us."""
    if connection.in_atomic_block:
        raise RuntimeError("an SMS is never sent inside a database transaction")
    sending = [SmsState.SENDING]
    driver = message.driver
    if driver is not None and driver.sms_opt_out and message.kind not in TRANSACTIONAL_KINDS:
        _transition(message.pk, from_states=sending, to_state=SmsState.SKIPPED,
                    detail="the driver opted out of SMS")  # fmt: skip
        return SmsState.SKIPPED
    sensitive = message.kind == SmsKind.LOGIN_CODE
    outcome = gateway.send(phone=message.phone, text=message.body, sensitive=sensitive)
    now = timezone.now()
    # A one-time code is kept in the outbox only until it is sent.
    body = {"body": LOGIN_CODE_REDACTED} if sensitive else {}
    if isinstance(outcome, SmsAccepted):
        _transition(
            message.pk,
            from_states=sending,
            to_state=SmsState.SENT,
            gateway=gateway.name,
            provider_message_id=outcome.message_id[:100],
            provider_status=outcome.status[:50],
            provider_status_code=outcome.status_code[:10],
            cost=outcome.cost[:30],
            sent_at=now,
            detail="",
            **body,
        )
        delivery_reports_apply(provider_message_id=outcome.message_id)
        return SmsState.SENT
    if isinstance(outcome, SmsRejected):
        _transition(
            message.pk,
            from_states=sending,
            to_state=SmsState.FAILED,
            gateway=gateway.name,
            provider_status=outcome.status[:50],
            provider_status_code=outcome.status_code[:10],
            detail=f"rejected: {outcome.detail}"[:2000],
            **body,
        )
        return SmsState.FAILED
    if isinstance(outcome, SmsRefused):
        _transition(
            message.pk,
            from_states=sending,
            to_state=SmsState.QUEUED,
            gateway=gateway.name,
            next_attempt_at=now + _backoff(message.attempts),
            detail=f"attempt {message.attempts} refused: {outcome.detail}"[:2000],
        )
        return SmsState.QUEUED
    _transition(
        message.pk,
        from_states=sending,
        to_state=SmsState.UNKNOWN,
        gateway=gateway.name,
        detail=f"outcome unknown, not resent: {outcome.detail}"[:2000],
        **body,
    )
    logger.warning("sms outcome unknown", extra={"sms": message.pk, "detail": outcome.detail})
    return SmsState.UNKNOWN


def sms_recover_stale() -> int:
    """Messages left `sending` by a worker that died mid-request become `unknown`."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.SMS_SENDING_STALE_SECONDS)
    return SmsMessage.objects.filter(state=SmsState.SENDING, claimed_at__lt=cutoff).update(
        state=SmsState.UNKNOWN,
        detail="worker stopped while sending; the provider may have it: not resent",
        updated_at=timezone.now(),
    )


def sms_expire() -> int:
    """Queued messages whose time has passed are given up (a reminder of yesterday's target,
    a login code that no longer works)."""
    return SmsMessage.objects.filter(state=SmsState.QUEUED, expires_at__lte=timezone.now()).update(
        state=SmsState.FAILED, detail="expired before it could be sent", updated_at=timezone.now()
    )


@dataclass
class SmsWorkReport:
    expired: int = 0
    recovered: int = 0
    states: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"expired": self.expired, "recovered": self.recovered, **self.states}


def sms_work(*, gateway: SmsGateway, worker: str, limit: int | None = None) -> SmsWorkReport:
    """One pass: give up expired messages, settle stale claims, send what is due."""
    if connection.in_atomic_block:
        raise RuntimeError("SMS are never sent inside a database transaction")
    report = SmsWorkReport(expired=sms_expire(), recovered=sms_recover_stale())
    due = list(
        sms_due().order_by("pk").values_list("pk", flat=True)[: limit or settings.SMS_BATCH_SIZE]
    )
    # Oldest first (several workers may race for the same row: the CAS gives it to one). A
    # refusal ends the pass, so during an outage the oldest message is the one retried.
    refused = False
    for pk in due:
        if refused:
            break  # the gateway is down: the rest waits for the next pass
        message = sms_claim(pk=pk, worker=worker)
        if message is None:
            continue
        state = sms_send(message=message, gateway=gateway)
        report.states[state] = report.states.get(state, 0) + 1
        refused = state == SmsState.QUEUED
    return report


def sms_outage_unalerted() -> list[SmsMessage]:
    """Queued messages refused at least TUKTUK_SMS_ALERT_AFTER_ATTEMPTS times: the gateway is
    down (or its credentials wrong) for a while."""
    return list(
        SmsMessage.objects.filter(
            state=SmsState.QUEUED, attempts__gte=settings.SMS_ALERT_AFTER_ATTEMPTS
        ).order_by("pk")[:20]
    )


# Delivery reports --------------------------------------------------------------------------------

DELIVERED = frozenset({"Success"})
UNDELIVERED = frozenset({"Failed", "Rejected", "AbsentSubscriber", "Expired"})


def delivery_report_receive(*, fields: dict[str, str], body: str) -> DeliveryReport:
    """Store a delivery report as received, then apply it to its message (when known)."""
    report = DeliveryReport.objects.create(
        provider_message_id=fields.get("id", "")[:100],
        status=fields.get("status", "")[:50],
        phone_number=fields.get("phoneNumber", "")[:32],
        network_code=fields.get("networkCode", "")[:20],
        failure_reason=fields.get("failureReason", "")[:100],
        retry_count=fields.get("retryCount", "")[:10],
        body=body[:4000],
    )
    if report.provider_message_id:
        if not SmsMessage.objects.filter(provider_message_id=report.provider_message_id).exists():
            _match_unknown(report)
        delivery_reports_apply(provider_message_id=report.provider_message_id)
    report.refresh_from_db()
    return report


def _match_unknown(report: DeliveryReport) -> None:
    """A report for a message id we never recorded: the provider took a message whose answer
    we lost (a worker killed mid-request). If exactly one message to that number is `unknown`
    without an id, it is that one."""
    try:
        phone = normalize_msisdn(report.phone_number)
    except InvalidPhoneNumber:
        return
    candidates = list(
        SmsMessage.objects.filter(
            state=SmsState.UNKNOWN, phone=phone, provider_message_id=""
        ).values_list("pk", flat=True)[:2]
    )
    if len(candidates) == 1:
        SmsMessage.objects.filter(pk=candidates[0], provider_message_id="").update(
            provider_message_id=report.provider_message_id,
            detail="matched to the provider's delivery report by number",
            updated_at=timezone.now(),
        )


def delivery_reports_apply(*, provider_message_id: str) -> int:
    """Apply the stored, unapplied reports of one provider message id (in arrival order)."""
    message = SmsMessage.objects.filter(provider_message_id=provider_message_id).first()
    if message is None:
        return 0
    applied = 0
    for report in DeliveryReport.objects.filter(
        provider_message_id=provider_message_id, applied_at__isnull=True
    ).order_by("pk"):
        if not DeliveryReport.objects.filter(pk=report.pk, applied_at__isnull=True).update(
            applied_at=timezone.now(), message=message
        ):
            continue  # applied by another process meanwhile
        applied += 1
        common: dict[str, Any] = {
            "provider_status": report.status[:50],
            "network_code": report.network_code,
        }
        # Delivered / undelivered are final; a later "Sent"/"Buffered" report never undoes them.
        open_states = [SmsState.SENDING, SmsState.SENT, SmsState.UNKNOWN]
        if report.status in DELIVERED:
            _transition(
                message.pk,
                from_states=[*open_states, SmsState.FAILED],
                to_state=SmsState.DELIVERED,
                delivered_at=timezone.now(),
                **common,
            )
        elif report.status in UNDELIVERED:
            _transition(
                message.pk,
                from_states=open_states,
                to_state=SmsState.FAILED,
                detail=f"not delivered: {report.status} {report.failure_reason}".strip()[:2000],
                **common,
            )
        else:  # Sent, Submitted, Buffered: on its way
            _transition(
                message.pk, from_states=[SmsState.SENT, SmsState.UNKNOWN], to_state=SmsState.SENT,
                **common,
            )  # fmt: skip
    return applied


def sms_phone_label(message: SmsMessage) -> str:
    return masked_phone(message.phone)
