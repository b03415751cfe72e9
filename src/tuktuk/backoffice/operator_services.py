"""Operator runs of jobs the worker also does (replaying callbacks, closing days): the same
services, plus the audit event naming who asked. The worker's own runs are the system's and
leave no such event; the ledger and M-Pesa layers record what each run changed."""

from __future__ import annotations

import datetime as dt

from tuktuk.core import events
from tuktuk.ledger.day_close import day_close_run
from tuktuk.mpesa.callbacks import callbacks_replay, confirmation_process
from tuktuk.mpesa.models import Callback, CallbackKind


def callbacks_replay_by(
    *,
    actor: str,
    callback_ids: list[int] | None = None,
    stale_after: dt.timedelta = dt.timedelta(minutes=2),
) -> dict[str, int]:
    """Replay the given stored C2B confirmations (each is idempotent: one already processed
    stays processed), or, without ids, every failed or stalled one; counts by outcome."""
    if callback_ids is None:
        counts = callbacks_replay(stale_after=stale_after)
        replayed: list[int] | None = None
    else:
        replayed = list(
            Callback.objects.filter(pk__in=callback_ids, kind=CallbackKind.C2B_CONFIRMATION)
            .order_by("received_at", "pk")
            .values_list("pk", flat=True)
        )
        counts = {}
        for callback_id in replayed:
            state = confirmation_process(callback_id=callback_id)
            counts[state] = counts.get(state, 0) + 1
    total = sum(counts.values())
    summary = ", ".join(f"{state}: {n}" for state, n in sorted(counts.items())) or "none"
    events.event_record(
        title=events.EventTitle.CALLBACKS_REPLAYED,
        actor=actor,
        message=f"{actor} replayed {total} callback(s): {summary}",
        data={"counts": counts, "callback_ids": replayed},
    )
    return counts


def days_close_by(*, actor: str, through_day: dt.date | None = None) -> int:
    """The day close run by an operator (the CLI); the worker runs day_close_run itself."""
    closed = day_close_run(through_day=through_day)
    events.event_record(
        title=events.EventTitle.DAYS_CLOSED_BY_OPERATOR,
        actor=actor,
        message=f"{actor} ran the day close through {through_day or 'every due day'}: "
        f"{closed} driver-day(s) closed",
        data={"through_day": str(through_day) if through_day else None, "closed": closed},
    )
    return closed
