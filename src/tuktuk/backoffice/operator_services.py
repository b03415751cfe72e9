"""Operator runs of jobs the worker also does (replaying callbacks, closing days): the same
services, plus the audit event naming who asked. The worker's own runs are the system's and
leave no such event; the ledger and M-Pesa layers record what each run changed."""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from tuktuk.core import events
from tuktuk.ledger.day_close import day_close_run
from tuktuk.mpesa.callbacks import POSTING_ENGINE, callbacks_replay, confirmation_process
from tuktuk.mpesa.models import Callback, CallbackKind
from tuktuk.mpesa.posting_engine import engine_pass


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
        if settings.POSTING_MODE == POSTING_ENGINE:
            # Through the engine's claim, so a running engine never posts the same rows.
            engine_pass(callback_ids=replayed, limit=max(1, len(replayed)))
            states = list(Callback.objects.filter(pk__in=replayed).values_list("state", flat=True))
        else:
            states = [confirmation_process(callback_id=callback_id) for callback_id in replayed]
        counts = {}
        for state in states:
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
