"""The C2B inbox: store every callback raw first, then process it; failures stay replayable."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.db import on_live_connection, row_insert
from tuktuk.core.group_insert import GroupInsert
from tuktuk.core.lookups import array_literal
from tuktuk.fleet.models import FleetSettings
from tuktuk.ledger.business_day import within_operating_hours
from tuktuk.ledger.day_close import DayCloseNotReady
from tuktuk.ledger.services import (
    IncomingPayment,
    PostingOutcome,
    PostingResult,
    WithinPosting,
    account_resolve,
    payment_post,
)
from tuktuk.mpesa.c2b import (
    ACCEPTED,
    INVALID_ACCOUNT,
    OTHER_ERROR,
    CallbackRejected,
    parse_body,
    payment_from_payload,
)
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState

logger = logging.getLogger(__name__)

_POSTING_STATES = {
    PostingOutcome.POSTED: CallbackState.PROCESSED,
    PostingOutcome.DUPLICATE: CallbackState.DUPLICATE,
    PostingOutcome.UNMATCHED: CallbackState.UNMATCHED,
    PostingOutcome.REPAYMENT: CallbackState.PROCESSED,
    PostingOutcome.SELF_PAYMENT: CallbackState.PROCESSED,
}
# TUKTUK_POSTING: "engine" (store, acknowledge, the posting engine credits) or "inline" (the
# request posts before it answers).
POSTING_ENGINE = "engine"
POSTING_INLINE = "inline"
# States a confirmation may be (re)processed from. Compare-and-swap on these makes a replay
# racing a live request harmless: the posting is idempotent and only one marks the row.
PROCESSABLE = [CallbackState.RECEIVED, CallbackState.FAILED]


def caller_allowed(remote_addr: str) -> bool:
    allowed = settings.CALLBACK_ALLOWED_IPS
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(entry, strict=False) for entry in allowed)


def callback_store(
    *,
    kind: str,
    body: bytes,
    content_type: str,
    remote_addr: str,
    state: str = CallbackState.RECEIVED,
    error: str = "",
    result_code: str = "",
) -> Callback:
    """Store the body as received (undecodable bytes kept visible as escapes). The first
    statement of every callback's request: on a dead persistent connection it reconnects and
    stores again (core.db.on_live_connection), so the webhook lane needs no health check."""
    row = {
        **_callback_row(kind=kind, body=body, content_type=content_type, remote_addr=remote_addr),
        "state": state,
        "error": storable(error),
        "result_code": result_code,
    }
    callback = Callback(pk=_row_store(row), **row)
    callback._state.adding = False
    callback._state.db = connection.alias
    return callback


# With TUKTUK_STORE_GROUPING, the confirmation lane's stores grouped across its request
# threads (core.group_insert says why): one per process, as the threads share it.
_CONFIRMATIONS = GroupInsert(model=Callback)


def confirmation_store(*, body: bytes, content_type: str, remote_addr: str) -> int:
    """callback_store for a C2B confirmation, returning only its primary key: the confirmation
    lane answers from that and builds no model instance (a few percent of its CPU). With
    TUKTUK_STORE_GROUPING, stored with whatever other threads of the process store at the
    same moment, in one statement; either way it returns once its row has committed."""
    # State, error and result code left out: the fields' defaults, received and blank.
    row = _callback_row(
        kind=CallbackKind.C2B_CONFIRMATION,
        body=body,
        content_type=content_type,
        remote_addr=remote_addr,
    )
    if settings.STORE_GROUPING:
        return _CONFIRMATIONS.insert(row)
    return _row_store(row)


def _callback_row(
    *, kind: str, body: bytes, content_type: str, remote_addr: str
) -> dict[str, object]:
    """What every stored callback holds, as received: the body, where it came from, when."""
    return {
        "kind": kind,
        # PostgreSQL text cannot hold NUL: keep it visible as an escape like other bad bytes.
        "body": body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00"),
        "content_type": content_type[:100],
        "remote_addr": remote_addr[:64],
        "received_at": timezone.now(),
    }


def _row_store(row: dict[str, object]) -> int:
    # One hand-written INSERT: the ORM's create() spends about 0.1 ms building the same one.
    return on_live_connection(lambda: row_insert(model=Callback, row=row))


def _mark(callback_id: int, *, state: str, error: str = "", **fields: object) -> int:
    return Callback.objects.filter(pk=callback_id, state__in=PROCESSABLE).update(
        state=state, error=error, processed_at=timezone.now(), **fields
    )


def storable(text: str) -> str:
    """Text every database can hold: a lone surrogate or a NUL kept visible as an escape."""
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def callback_reject(callback: Callback, rejection: CallbackRejected) -> None:
    """Mark a stored callback rejected with its reason (once), and say so in the event log."""
    reason = storable(rejection.reason)
    if _mark(callback.pk, state=CallbackState.REJECTED, error=reason):
        events.event_record(
            title=events.EventTitle.CALLBACK_REJECTED,
            level=events.EventLevel.WARNING,
            message=reason,
            data={"callback_id": callback.pk, "kind": callback.kind},
        )


def stored_payment(callback: Callback) -> IncomingPayment:
    """The payment a stored confirmation reports, dated the moment we stored it (the fare
    belongs to that business day, whenever it is posted); CallbackRejected if unreadable."""
    payload = parse_body(callback.body.encode("utf-8"), callback.content_type)
    payment = payment_from_payload(payload, maximum=settings.MAX_PAYMENT_AMOUNT)
    return dataclasses.replace(payment, received_at=callback.received_at)


def posted_marker(callback: Callback, payment: IncomingPayment) -> WithinPosting:
    """Marks the callback with its posting's outcome inside the posting's transaction, so the
    callback's state commits (or rolls back) together with the money."""

    def mark_posted(result: PostingResult) -> None:
        _mark(
            callback.pk,
            state=_POSTING_STATES[result.outcome],
            transaction=result.transaction,
            trans_id=payment.trans_id,
            attempts=callback.attempts + 1,
        )

    return mark_posted


def callbacks_mark_posted(credited: list[tuple[Callback, PostingResult]]) -> int:
    """Mark many callbacks with their postings' outcomes in one UPDATE (the posting engine's
    batch), inside the transaction that credited them; what `_mark` does for one. Written as
    SQL because the ORM's Case/When costs about a millisecond of Python per row to build here.
    Returns how many were marked."""
    if not credited:
        return 0
    table = connection.ops.quote_name(Callback._meta.db_table)
    if connection.vendor == "postgresql":
        return _mark_posted_from_arrays(table, credited)
    whens = " ".join("WHEN %s THEN %s" for _ in credited)
    statement = (
        f"UPDATE {table} SET state = CASE id {whens} END, "  # noqa: S608 - placeholders only
        f"transaction_id = CASE id {whens} END, trans_id = CASE id {whens} END, "
        "attempts = attempts + 1, error = '', processed_at = %s "
        f"WHERE id IN ({', '.join('%s' for _ in credited)}) AND state IN (%s, %s)"
    )
    params: list[Any] = [v for c, r in credited for v in (c.pk, _POSTING_STATES[r.outcome])]
    params += [v for c, r in credited for v in (c.pk, r.transaction.pk)]
    params += [v for c, r in credited for v in (c.pk, r.transaction.trans_id)]
    params += [timezone.now(), *(c.pk for c, _ in credited), *PROCESSABLE]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return int(cursor.rowcount)


def _mark_posted_from_arrays(table: str, credited: list[tuple[Callback, PostingResult]]) -> int:
    """callbacks_mark_posted on PostgreSQL: joined to one array per column (unnest) instead of
    three CASEs of a placeholder per row, which psycopg parses anew for every batch (it caches
    no statement that long)."""
    statement = (
        f"UPDATE {table} SET state = v.new_state, transaction_id = v.transaction_pk, "  # noqa: S608
        "trans_id = v.new_trans_id, attempts = attempts + 1, error = '', processed_at = %s "
        "FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[]) "
        "AS v(id, new_state, transaction_pk, new_trans_id) "
        f"WHERE {table}.id = v.id AND {table}.state IN (%s, %s)"
    )
    params: list[Any] = [
        timezone.now(),
        array_literal(c.pk for c, _ in credited),
        [str(_POSTING_STATES[r.outcome]) for _, r in credited],
        array_literal(r.transaction.pk for _, r in credited),
        [r.transaction.trans_id for _, r in credited],
        *PROCESSABLE,
    ]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return int(cursor.rowcount)


def posting_waits(callback: Callback, payment: IncomingPayment, waiting: Exception) -> None:
    """Stored and durable, received after an earlier day's cutoff that is not closed yet, so it
    does not hold the close up itself: left as received, to be posted once that day closed."""
    logger.info("C2B confirmation waits for a day close", extra={"callback": callback.pk})
    Callback.objects.filter(pk=callback.pk, state=CallbackState.RECEIVED).update(
        error=str(waiting)[:2000], trans_id=payment.trans_id
    )


def posting_failed(callback: Callback, payment: IncomingPayment, exc: Exception) -> None:
    """Stored, not posted: marked failed and replayed later. Nothing is lost."""
    Callback.objects.filter(pk=callback.pk).update(
        state=CallbackState.FAILED,
        error=storable(f"{type(exc).__name__}: {exc}"[:2000]),
        trans_id=payment.trans_id,
        attempts=callback.attempts + 1,
    )
    events.event_record(
        title=events.EventTitle.CALLBACK_FAILED,
        level=events.EventLevel.ERROR,
        message=f"TransID {payment.trans_id}: {type(exc).__name__}: {exc}",
        data={"callback_id": callback.pk, "trans_id": payment.trans_id},
    )


def confirmation_process(*, callback_id: int, callback: Callback | None = None) -> str:
    """Post a stored confirmation. Returns the callback's new state; never raises for input.
    `callback`: the row just stored, saving a re-read on the hot path."""
    if callback is None:
        callback = Callback.objects.get(pk=callback_id)
    if callback.state not in PROCESSABLE:
        return callback.state
    try:
        payment = stored_payment(callback)
    except CallbackRejected as rejection:
        callback_reject(callback, rejection)
        return CallbackState.REJECTED
    try:
        result = payment_post(payment=payment, within=posted_marker(callback, payment))
    except DayCloseNotReady as waiting:
        posting_waits(callback, payment, waiting)
        return CallbackState.RECEIVED
    except Exception as exc:
        logger.exception(
            "posting a stored C2B confirmation failed", extra={"callback": callback_id}
        )
        posting_failed(callback, payment, exc)
        return CallbackState.FAILED
    return _POSTING_STATES[result.outcome]


def confirmation_refusal(
    *, body: bytes, content_type: str, remote_addr: str
) -> CallbackRejected | None:
    """Why a confirmation is refused before any posting (its caller, a body that cannot be read
    one way only), or None."""
    try:
        if not caller_allowed(remote_addr):
            raise CallbackRejected(f"caller {remote_addr} is not in TUKTUK_CALLBACK_ALLOWED_IPS")
        # Checked on the raw bytes: the stored text keeps undecodable bytes only as escapes.
        parse_body(body, content_type)
    except CallbackRejected as rejection:
        return rejection
    return None


def confirmation_receive(*, body: bytes, content_type: str, remote_addr: str) -> str:
    """Store, then post. The caller answers 503 if this raises (i.e. storing failed)."""
    callback = callback_store(
        kind=CallbackKind.C2B_CONFIRMATION,
        body=body,
        content_type=content_type,
        remote_addr=remote_addr,
    )
    refusal = confirmation_refusal(body=body, content_type=content_type, remote_addr=remote_addr)
    if refusal is not None:
        callback_reject(callback, refusal)
        return CallbackState.REJECTED
    if settings.POSTING_MODE == POSTING_ENGINE:
        # Stored and committed: acknowledged now, credited by the posting engine
        # (mpesa.posting_engine), which a database trigger wakes on PostgreSQL.
        return CallbackState.RECEIVED
    return confirmation_process(callback_id=callback.pk, callback=callback)


def oversized_body_store(
    *, kind: str, size: int, head: bytes, content_type: str, remote_addr: str
) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    callback = callback_store(
        kind=kind, body=head, content_type=content_type, remote_addr=remote_addr
    )
    callback_reject(
        callback, CallbackRejected(f"body of {size} bytes is over the {limit}-byte limit")
    )


@dataclass(frozen=True)
class ValidationAnswer:
    code: str
    description: str


def validation_decide(*, body: bytes, content_type: str, remote_addr: str) -> ValidationAnswer:
    """Accept or refuse a payment before M-Pesa takes the money; the decision is stored."""
    rejection_reason = ""
    try:
        if not caller_allowed(remote_addr):
            raise CallbackRejected(f"caller {remote_addr} is not in TUKTUK_CALLBACK_ALLOWED_IPS")
        payload = parse_body(body, content_type)
        payment = payment_from_payload(payload, maximum=settings.MAX_PAYMENT_AMOUNT)
        # The posting's own rule: a vehicle with a driver, or a driver's id or alias.
        if account_resolve(payment.account_reference)[1] is None:
            raise CallbackRejected(
                f"account {payment.account_reference!r} is neither a vehicle with a driver "
                "nor an active driver's id",
                INVALID_ACCOUNT,
            )
        if not within_operating_hours(timezone.now(), fleet=FleetSettings.load()):
            raise CallbackRejected("outside operating hours", OTHER_ERROR)
    except CallbackRejected as rejection:
        answer = ValidationAnswer(rejection.code, "Rejected")
        rejection_reason = rejection.reason
        logger.info(
            "C2B validation rejected", extra={"code": rejection.code, "reason": rejection.reason}
        )
    else:
        answer = ValidationAnswer(ACCEPTED, "Accepted")
    rejected = answer.code != ACCEPTED
    callback_store(
        kind=CallbackKind.C2B_VALIDATION,
        body=body,
        content_type=content_type,
        remote_addr=remote_addr,
        state=CallbackState.REJECTED if rejected else CallbackState.ACCEPTED,
        error=rejection_reason if rejected else "",
        result_code=answer.code,
    )
    return answer


class StoredConfirmations:
    """The ledger's ConfirmationInbox port: confirmations stored and not yet posted."""

    def unposted_received_before(self, *, moment: dt.datetime) -> int:
        return Callback.objects.filter(
            kind=CallbackKind.C2B_CONFIRMATION,
            state=CallbackState.RECEIVED,
            received_at__lt=moment,
        ).count()


def callbacks_replay(*, stale_after: dt.timedelta = dt.timedelta(minutes=2)) -> dict[str, int]:
    """Re-process failed confirmations, and received ones a crash left behind. With the posting
    engine, failed ones go back to the engine's queue (`received`): the engine claims each row
    before posting it, so the worker and the engines never post the same row at once."""
    if settings.POSTING_MODE == POSTING_ENGINE:
        requeued = Callback.objects.filter(
            kind=CallbackKind.C2B_CONFIRMATION, state=CallbackState.FAILED
        ).update(state=CallbackState.RECEIVED)
        return {"requeued": requeued} if requeued else {}
    cutoff = timezone.now() - stale_after
    pending = (
        Callback.objects.filter(kind=CallbackKind.C2B_CONFIRMATION)
        .filter(
            Q(state=CallbackState.FAILED) | Q(state=CallbackState.RECEIVED, received_at__lt=cutoff)
        )
        .order_by("received_at", "pk")
        .values_list("pk", flat=True)
    )
    counts: dict[str, int] = {}
    for callback_id in list(pending):
        state = confirmation_process(callback_id=callback_id)
        counts[state] = counts.get(state, 0) + 1
    return counts
