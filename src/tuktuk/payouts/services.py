"""Driver payouts: exactly once, or visibly marked for an operator.

Every state change is a compare-and-swap (`filter(pk, state__in=…).update(…)`), so workers,
result callbacks and operators can race without a payout moving twice. Network calls happen
between transactions: claim (commit) → call the gateway → record the outcome (commit).

The OriginatorConversationID is the idempotency key Daraja enforces: a payout is only sent
again with the same id when M-Pesa has refused it or the status query found no trace of it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.errors import Conflict, InvalidInput, NotFound
from tuktuk.fleet.models import Driver
from tuktuk.payouts.gateway import Accepted, AlreadySubmitted, PayoutGateway, Refused
from tuktuk.payouts.models import Payout, PayoutState

logger = logging.getLogger(__name__)

OPEN_STATES = [PayoutState.PENDING, PayoutState.SENDING, PayoutState.SUBMITTED, PayoutState.UNKNOWN]
# A success result wins from any state but completed: the provider paid, whatever we believed.
NOT_COMPLETED = [*OPEN_STATES, PayoutState.FAILED]


def _payout(payout_id: int) -> Payout:
    payout = Payout.objects.filter(pk=payout_id).select_related("driver").first()
    if payout is None:
        raise NotFound(f"no payout {payout_id}")
    return payout


def payout_transition(
    payout_id: int, *, from_states: Sequence[str], to_state: str, **fields: Any
) -> bool:
    changed = Payout.objects.filter(pk=payout_id, state__in=from_states).update(
        state=to_state, updated_at=timezone.now(), **fields
    )
    return changed == 1


# Sending -------------------------------------------------------------------------------------


def payouts_claim(*, worker: str, limit: int) -> list[Payout]:
    """Claim due pending payouts for this worker. SKIP LOCKED lets several workers claim at
    once without waiting on each other; the CAS to `sending` makes each claim exclusive."""
    now = timezone.now()
    with transaction.atomic():
        due = Payout.objects.filter(state=PayoutState.PENDING).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        )
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.order_by("pk").values_list("pk", flat=True)[:limit])
        Payout.objects.filter(pk__in=ids, state=PayoutState.PENDING).update(
            state=PayoutState.SENDING,
            claimed_at=now,
            claimed_by=worker[:64],
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    return list(
        Payout.objects.filter(pk__in=ids, state=PayoutState.SENDING, claimed_by=worker[:64])
    )


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(300, 2 ** max(0, attempts - 1)))


def payout_send(*, payout: Payout, gateway: PayoutGateway) -> str:
    """Send one claimed payout and record what the provider's answer tells us."""
    outcome = gateway.send(
        reference=payout.originator_conversation_id,
        amount=payout.amount,
        phone=payout.phone,
        remarks=f"TukTuk {payout.kind} {payout.driver_id}",
    )
    sending = [PayoutState.SENDING]
    if isinstance(outcome, Accepted):
        # A result that already arrived (out of order) has moved the row on; keep its state.
        payout_transition(
            payout.pk,
            from_states=sending,
            to_state=PayoutState.SUBMITTED,
            conversation_id=outcome.conversation_id,
        )
        Payout.objects.filter(pk=payout.pk, conversation_id="").update(
            conversation_id=outcome.conversation_id
        )
        return PayoutState.SUBMITTED
    if isinstance(outcome, AlreadySubmitted):
        # Daraja already has this id: it was submitted before. Wait for its result.
        payout_transition(payout.pk, from_states=sending, to_state=PayoutState.SUBMITTED)
        return PayoutState.SUBMITTED
    if isinstance(outcome, Refused):
        if payout.attempts >= settings.PAYOUT_MAX_ATTEMPTS:
            if payout_transition(
                payout.pk,
                from_states=sending,
                to_state=PayoutState.FAILED,
                result_desc=f"refused {payout.attempts} times: {outcome.detail}"[:2000],
            ):
                payout_failed_event(payout, outcome.detail)
            return PayoutState.FAILED
        payout_transition(
            payout.pk,
            from_states=sending,
            to_state=PayoutState.PENDING,
            next_attempt_at=timezone.now() + _backoff(payout.attempts),
            result_desc=f"attempt {payout.attempts} refused: {outcome.detail}"[:2000],
        )
        return PayoutState.PENDING
    if payout_transition(
        payout.pk,
        from_states=sending,
        to_state=PayoutState.UNKNOWN,
        result_desc=f"outcome unknown: {outcome.detail}"[:2000],
    ):
        events.event_record(
            title=events.EventTitle.PAYOUT_UNKNOWN,
            level=events.EventLevel.WARNING,
            driver=payout.driver,
            message=f"{payout.originator_conversation_id}: {outcome.detail}; not resent, "
            "waiting for the result, the status query or an operator",
            data={"payout": payout.pk, "amount": str(payout.amount)},
        )
    return PayoutState.UNKNOWN


def payout_failed_event(payout: Payout, detail: str) -> None:
    events.event_record(
        title=events.EventTitle.PAYOUT_FAILED,
        level=events.EventLevel.ERROR,
        driver=payout.driver,
        message=f"{payout.originator_conversation_id} ({payout.amount} KSH to {payout.phone}): "
        f"{detail}",
        data={"payout": payout.pk, "amount": str(payout.amount)},
    )


def payouts_recover_stale() -> int:
    """Payouts left `sending` by a worker that died mid-request become `unknown`."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.PAYOUT_SENDING_STALE_SECONDS)
    return Payout.objects.filter(state=PayoutState.SENDING, claimed_at__lt=cutoff).update(
        state=PayoutState.UNKNOWN,
        result_desc="worker stopped while sending; outcome unknown",
        updated_at=timezone.now(),
    )


def payouts_query_unknown(*, gateway: PayoutGateway, every: dt.timedelta) -> int:
    """Ask M-Pesa what happened to unknown payouts (the answer arrives as a callback)."""
    cutoff = timezone.now() - every
    asked = 0
    for payout in Payout.objects.filter(state=PayoutState.UNKNOWN).filter(
        Q(status_queried_at__isnull=True) | Q(status_queried_at__lt=cutoff)
    )[:100]:
        # Claim the query (CAS on the timestamp) so two workers do not both ask.
        claimed = Payout.objects.filter(
            pk=payout.pk, state=PayoutState.UNKNOWN, status_queried_at=payout.status_queried_at
        ).update(status_queried_at=timezone.now())
        if claimed:
            gateway.query(reference=payout.originator_conversation_id)
            asked += 1
    return asked


@dataclass
class WorkReport:
    claimed: int = 0
    submitted: int = 0
    retrying: int = 0
    failed: int = 0
    unknown: int = 0
    recovered: int = 0
    status_queries: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def payouts_work(*, gateway: PayoutGateway, worker: str, max_batches: int = 100) -> WorkReport:
    report = WorkReport(recovered=payouts_recover_stale())
    for _ in range(max_batches):
        batch = payouts_claim(worker=worker, limit=settings.PAYOUT_BATCH_SIZE)
        if not batch:
            break
        report.claimed += len(batch)
        for payout in batch:
            state = payout_send(payout=payout, gateway=gateway)
            if state == PayoutState.SUBMITTED:
                report.submitted += 1
            elif state == PayoutState.PENDING:
                report.retrying += 1
            elif state == PayoutState.FAILED:
                report.failed += 1
            else:
                report.unknown += 1
    if settings.PAYOUT_STATUS_QUERY:
        report.status_queries = payouts_query_unknown(
            gateway=gateway, every=dt.timedelta(minutes=10)
        )
    return report


# Results (from the provider's callbacks) ---------------------------------------------------


def payout_find(*ids: str, conversation_id: str = "") -> Payout | None:
    for originator_id in ids:
        if originator_id:
            payout = Payout.objects.filter(originator_conversation_id=originator_id).first()
            if payout:
                return payout
    if conversation_id:
        return Payout.objects.filter(conversation_id=conversation_id).first()
    return None


def payout_complete(payout: Payout, *, receipt: str, conversation_id: str, desc: str) -> bool:
    done = payout_transition(
        payout.pk,
        from_states=NOT_COMPLETED,
        to_state=PayoutState.COMPLETED,
        receipt=receipt[:32],
        result_code="0",
        result_desc=desc,
        completed_at=timezone.now(),
    )
    if done:
        Payout.objects.filter(pk=payout.pk, conversation_id="").update(
            conversation_id=conversation_id[:64]
        )
        events.event_record(
            title=events.EventTitle.PAYOUT_COMPLETED,
            driver=payout.driver,
            message=f"{payout.amount} KSH to {payout.phone}, receipt {receipt}",
            data={"payout": payout.pk},
        )
    return done


def payout_fail(payout: Payout, *, code: str, desc: str) -> bool:
    done = payout_transition(
        payout.pk,
        from_states=OPEN_STATES,
        to_state=PayoutState.FAILED,
        result_code=code[:32],
        result_desc=desc,
    )
    if done:
        payout_failed_event(payout, f"ResultCode {code}: {desc}")
    return done


def payout_outcome_unknown(payout: Payout, *, desc: str) -> bool:
    """A queue timeout is not a failure: the outcome is unknown, and a later result wins."""
    return payout_transition(
        payout.pk,
        from_states=[PayoutState.SENDING, PayoutState.SUBMITTED],
        to_state=PayoutState.UNKNOWN,
        result_desc=desc,
    )


def payout_status_requery(payout: Payout) -> None:
    """The status query itself timed out: ask again on the next pass."""
    Payout.objects.filter(pk=payout.pk, state=PayoutState.UNKNOWN).update(status_queried_at=None)


def payout_not_found_requeue(payout: Payout, *, desc: str) -> bool:
    """The provider has no trace of it: it was never accepted, so sending it again with the
    same id (which the provider would refuse as a duplicate had it been accepted) is safe."""
    return payout_transition(
        payout.pk,
        from_states=[PayoutState.UNKNOWN],
        to_state=PayoutState.PENDING,
        next_attempt_at=None,
        result_desc=desc,
    )


# Operators -------------------------------------------------------------------------------------


def payouts_release(
    *,
    actor: str,
    driver: Driver | None = None,
    payout_ids: list[int] | None = None,
    everything: bool = False,
) -> int:
    """Release held payouts (instant payouts off): given ones, one driver's, or all. The
    state filter in the UPDATE releases each exactly once, however often this runs."""
    if driver is None and payout_ids is None and not everything:
        raise InvalidInput("name a driver or payouts, or release all")
    held = Payout.objects.filter(state=PayoutState.HELD)
    if driver is not None:
        held = held.filter(driver=driver)
    if payout_ids is not None:
        held = held.filter(pk__in=payout_ids)
    released = held.update(state=PayoutState.PENDING, updated_at=timezone.now(), resolved_by=actor)
    if released:
        events.event_record(
            title=events.EventTitle.PAYOUTS_RELEASED,
            driver=driver,
            actor=actor,
            message=f"{released} held payout(s) released",
            data={"count": released},
        )
    return released


def payout_retry(*, payout_id: int, actor: str, reason: str) -> Payout:
    """Send a payout again, only once its outcome is known to be a failure. M-Pesa keeps the
    failed attempt under its id, so the new attempt gets a new OriginatorConversationID."""
    if not reason.strip():
        raise InvalidInput("a reason is required")
    payout = _payout(payout_id)
    if payout.state != PayoutState.FAILED:
        raise Conflict(f"payout {payout_id} is {payout.state}; only failed payouts are retried")
    base = re.sub(r"-R\d+$", "", payout.originator_conversation_id)
    # attempts only grows, so every retry id is new.
    new_id = f"{base}-R{payout.attempts + 1}"[:64]
    if not payout_transition(
        payout.pk,
        from_states=[PayoutState.FAILED],
        to_state=PayoutState.PENDING,
        originator_conversation_id=new_id,
        next_attempt_at=None,
        result_code="",
        resolved_by=actor,
        failure_alerted_at=None,
    ):
        raise Conflict(f"payout {payout_id} changed meanwhile; look again")
    events.event_record(
        title=events.EventTitle.PAYOUT_RETRIED,
        driver=payout.driver,
        actor=actor,
        message=f"{payout.originator_conversation_id} → {new_id}: {reason}",
        data={"payout": payout.pk, "previous_id": payout.originator_conversation_id},
    )
    return Payout.objects.get(pk=payout.pk)


def payout_resolve(
    *, payout_id: int, actor: str, reason: str, completed: bool, receipt: str = ""
) -> Payout:
    """An operator settles an unknown payout after checking M-Pesa (e.g. the org portal)."""
    if not reason.strip():
        raise InvalidInput("a reason is required")
    if completed and not receipt.strip():
        raise InvalidInput("a completed payout needs its M-Pesa receipt")
    fields: dict[str, Any] = {"resolved_by": actor, "result_desc": f"operator: {reason}"[:2000]}
    if completed:
        fields.update(receipt=receipt.strip()[:32], completed_at=timezone.now())
    if not payout_transition(
        payout_id,
        from_states=[PayoutState.UNKNOWN],
        to_state=PayoutState.COMPLETED if completed else PayoutState.FAILED,
        **fields,
    ):
        raise Conflict(f"payout {payout_id} is not unknown any more; look again")
    payout = Payout.objects.get(pk=payout_id)
    events.event_record(
        title=events.EventTitle.PAYOUT_RESOLVED,
        driver=payout.driver,
        actor=actor,
        message=f"{payout.originator_conversation_id} marked {payout.state}: {reason}",
        data={"payout": payout.pk, "receipt": receipt},
    )
    return payout


def payouts_failed_unalerted() -> list[Payout]:
    """Failed payouts no alert was sent for yet; claimed by CAS so one worker sends each."""
    now = timezone.now()
    ids = list(
        Payout.objects.filter(state=PayoutState.FAILED, failure_alerted_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)[:200]
    )
    claimed = [
        pk
        for pk in ids
        if Payout.objects.filter(pk=pk, failure_alerted_at__isnull=True).update(
            failure_alerted_at=now
        )
    ]
    return list(Payout.objects.filter(pk__in=claimed).select_related("driver"))
