"""The posting engine: credits stored C2B confirmations exactly once, in batches.

The confirmation endpoint stores the raw callback, commits, and answers M-Pesa (store,
acknowledge); this engine then posts what was stored (post). Each pass, in one transaction:

1. claim up to ENGINE_BATCH_SIZE confirmations still `received`, oldest first, with
   `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL and MariaDB, so several engines share the
   inbox without ever taking the same row (on SQLite one writer at a time serialises them);
2. post them with the ledger's batch posting (every driver row locked once, in a fixed order;
   the same money rules and day-close handling as one posting at a time);
3. mark each callback with its outcome and commit once (group commit).

A pass killed half way rolls back whole: its confirmations are `received` again and the next
pass (of this engine or another) posts them; nothing is lost or credited twice, because the
callback's state and the money commit together. A confirmation whose posting fails is marked
`failed` and replayed by the worker, as before; one that must wait for an earlier day's close
stays `received` (with the reason in `error`) and is taken again by a later pass.

A fare's business day is the day it was received (`received_at`), never the day it is posted,
so a backlog at midnight files nothing in the wrong day.
"""

from __future__ import annotations

import logging
import threading
from contextlib import suppress
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, Error, close_old_connections, connection, transaction

from tuktuk.core.db import is_retryable
from tuktuk.ledger.batch_posting import BatchItem, BatchNeedsCare, ItemFate, payments_post_batch
from tuktuk.ledger.services import PostingResult
from tuktuk.mpesa import callbacks
from tuktuk.mpesa.c2b import CallbackRejected
from tuktuk.mpesa.inbox_wakeup import InboxWakeup
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState

logger = logging.getLogger(__name__)


@dataclass
class PassReport:
    claimed: int = 0
    posted: int = 0
    deferred: int = 0
    failed: int = 0
    rejected: int = 0
    retried: int = 0  # whole-batch retries after a deadlock or a lost serialisation

    def add(self, other: PassReport) -> None:
        for name in ("claimed", "posted", "deferred", "failed", "rejected", "retried"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def progressed(self) -> bool:
        return self.posted + self.failed + self.rejected > 0


def _claim(limit: int, callback_ids: list[int] | None) -> list[Callback]:
    rows = Callback.objects.select_for_update(skip_locked=True).filter(
        kind=CallbackKind.C2B_CONFIRMATION
    )
    if callback_ids is None:
        rows = rows.filter(state=CallbackState.RECEIVED)
    else:  # an operator's replay of chosen rows: failed ones too
        rows = rows.filter(pk__in=callback_ids, state__in=callbacks.PROCESSABLE)
    return list(
        rows.order_by("received_at", "pk").only(
            "pk", "body", "content_type", "received_at", "attempts", "state", "kind"
        )[:limit]
    )


def _pass_once(limit: int, callback_ids: list[int] | None, *, careful: bool) -> PassReport:
    report = PassReport()
    with transaction.atomic():
        claimed = _claim(limit, callback_ids)
        report.claimed = len(claimed)
        batch: list[tuple[Callback, BatchItem]] = []
        for callback in claimed:
            try:
                payment = callbacks.stored_payment(callback)
            except CallbackRejected as rejection:
                callbacks.callback_reject(callback, rejection)
                report.rejected += 1
                continue
            batch.append((callback, BatchItem(payment=payment, received=callback.received_at)))
        outcomes = payments_post_batch(items=[item for _, item in batch], careful=careful)
        credited: list[tuple[Callback, PostingResult]] = []
        for (callback, item), outcome in zip(batch, outcomes, strict=True):
            if outcome.fate is ItemFate.POSTED:
                assert outcome.result is not None
                credited.append((callback, outcome.result))
            elif outcome.fate is ItemFate.DEFERRED:
                report.deferred += 1
                callbacks.posting_waits(
                    callback, item.payment, RuntimeError("an earlier business day must close")
                )
            else:
                report.failed += 1
                assert outcome.error is not None
                callbacks.posting_failed(callback, item.payment, outcome.error)
        # Marked in the transaction that credits them: the state commits with the money.
        report.posted = callbacks.callbacks_mark_posted(credited)
    return report


def _pass_claimed_ids(limit: int, callback_ids: list[int] | None) -> PassReport:
    """A fast batch; if it meets a payment it cannot post as it stands, the same confirmations
    again, careful (a savepoint each). Between the two another engine may claim some: fine."""
    try:
        return _pass_once(limit, callback_ids, careful=False)
    except BatchNeedsCare as why:
        logger.info("posting batch run again with a savepoint per payment", extra={"why": str(why)})
    if callback_ids is None:
        # The rows the fast batch had claimed are free again; take the oldest again.
        return _pass_once(limit, None, careful=True)
    return _pass_once(limit, callback_ids, careful=True)


def engine_pass(
    *,
    limit: int | None = None,
    attempts: int | None = None,
    callback_ids: list[int] | None = None,
) -> PassReport:
    """Claim and post one batch (of `callback_ids` only, when given: an operator's replay). A
    deadlock or serialisation failure rolls the whole batch back and runs it again (the rows go
    back to `received` meanwhile, another engine may take some)."""
    limit = limit or settings.ENGINE_BATCH_SIZE
    attempts = attempts or settings.POSTING_MAX_ATTEMPTS
    retried = 0
    for attempt in range(1, attempts + 1):
        try:
            report = _pass_claimed_ids(limit, callback_ids)
        except DatabaseError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            retried += 1
            logger.warning("posting batch retried", extra={"attempt": attempt, "error": str(exc)})
            continue
        report.retried = retried
        return report
    raise AssertionError("unreachable")


class Replanning:
    """On PostgreSQL, the engine opens a new database session each time what it has credited
    doubles (after 100, 200, 400, ...), so its statements are planned again for the tables as
    they are now.

    Why: the engine's statements are prepared (TUKTUK_DB_PREPARED), and after five runs
    PostgreSQL may keep one generic plan for the session. Made while the inbox and the ledger
    were nearly empty (a new fleet, a bench), it stays a sequential scan as they grow, until an
    ANALYZE invalidates it; with autovacuum off, never. One engine crediting one hot driver
    then fell from about 1,800 to 800-1,000 per second, the database busy with those scans.
    Planning every statement afresh instead (plan_cache_mode = force_custom_plan) cured that
    but cost a tenth of the engines' speed; a new session at doubling steps costs a few
    milliseconds, ever more rarely. (A DEALLOCATE ALL would do, but psycopg forgets its own
    prepared statements only the first time it sees one.) Never inside a transaction: a test's
    atomic block, say."""

    FIRST = 100

    def __init__(self) -> None:
        self.credited = 0
        self.next_at = self.FIRST

    def after(self, report: PassReport) -> None:
        self.credited += report.posted
        if self.credited < self.next_at:
            return
        self.next_at = 2 * self.credited
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            connection.close()


def engine_drain(*, limit: int | None = None) -> PassReport:
    """Passes until a pass claims nothing it can progress on (what is left waits for a close).
    For `tuktuk engine --until-empty`, tests and benchmarks."""
    total = PassReport()
    replanning = Replanning()
    while True:
        report = engine_pass(limit=limit)
        total.add(report)
        replanning.after(report)
        if not report.progressed:
            return total


def engine_run(
    *,
    stop: threading.Event,
    limit: int | None = None,
    poll_seconds: float | None = None,
) -> None:
    """The engine's loop until `stop` is set: post while there is work, then wait for more.
    A database error costs one pass (logged), not the engine: the connection is dropped and
    the next pass reconnects."""
    wakeup = InboxWakeup(poll_seconds=poll_seconds or settings.ENGINE_POLL_SECONDS)
    replanning = Replanning()
    try:
        while not stop.is_set():
            close_old_connections()
            try:
                wakeup.prepare()
                report = engine_pass(limit=limit)
                if report.claimed:
                    wakeup.withdraw()
                replanning.after(report)
            except DatabaseError:
                logger.exception("posting engine pass failed on a database error; retrying")
                connection.close()
                stop.wait(wakeup.poll_seconds)
                continue
            if report.progressed and report.claimed >= (limit or settings.ENGINE_BATCH_SIZE):
                continue  # a full batch: more is probably waiting
            if report.deferred and not report.progressed:
                # Only confirmations waiting for a day close: do not spin on them.
                stop.wait(max(wakeup.poll_seconds, 0.2))
                continue
            if report.claimed:
                # Some progress: look again before sleeping, after letting a few more arrive.
                stop.wait(settings.ENGINE_GATHER_SECONDS)
                continue
            try:
                if wakeup.announce():
                    continue  # what was stored before the announcement notified nobody
                wakeup.wait(stop)
            except DatabaseError:
                logger.exception("posting engine lost its connection while idle")
                connection.close()
    finally:
        with suppress(Error):  # a connection already gone took its announcement along
            wakeup.withdraw()
