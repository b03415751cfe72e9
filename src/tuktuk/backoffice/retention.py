"""The retention job: stored callbacks and events older than TUKTUK_RETENTION_DAYS (default
400) are archived to files in TUKTUK_ARCHIVE_DIR and deleted, never those still needed
(docs/design.md, "Retention"). Callbacks: mpesa.retention. Events live here, because what makes
an event still needed (an open payout, a stored callback) sits in the layers above core.

An event is kept while:
- it is younger than the cut-off, which is never later than the start of the oldest business
  day still open for an active driver (nothing of an open day is archived, whatever the age);
- it names (in its data) a callback that is still stored (`callback_id`), a payout that is not
  completed or failed (`payout`), or an adjustment still open (`adjustment`).
Nothing references an event (there is no foreign key to it).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.archive import ArchiveRun, table_archive
from tuktuk.core.errors import InvalidInput
from tuktuk.core.models import Event
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.business_day import day_open_moment
from tuktuk.ledger.day_close import current_business_day
from tuktuk.ledger.models import Adjustment, AdjustmentState
from tuktuk.mpesa.models import Callback
from tuktuk.mpesa.retention import FINAL_PAYOUT_STATES, callbacks_archive
from tuktuk.payouts.models import Payout

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000


def archive_cutoff(*, older_than_days: int) -> dt.datetime:
    """Rows from before this moment may be archived: `older_than_days` ago, or the start of the
    oldest business day some active driver has not closed, whichever is earlier."""
    fleet = FleetSettings.load()
    oldest_open = current_business_day(fleet)
    oldest_balance_day = Driver.objects.filter(is_active=True).aggregate(day=Min("balance_day"))[
        "day"
    ]
    if oldest_balance_day is not None and oldest_balance_day < oldest_open:
        oldest_open = oldest_balance_day
    return min(
        timezone.now() - dt.timedelta(days=older_than_days),
        day_open_moment(oldest_open, fleet=fleet),
    )


def _int_refs(rows: Sequence[Event], key: str) -> set[int]:
    refs = set()
    for row in rows:
        value = row.data.get(key) if isinstance(row.data, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            refs.add(value)
    return refs


def _events_needed(rows: Sequence[Event], *, lock: bool = False) -> set[int]:
    """The pks of `rows` that name something still needed (module docstring). With `lock`,
    the named payouts are locked, so none can be retried (reopened) before the delete commits."""
    callbacks = _int_refs(rows, "callback_id")
    payouts = _int_refs(rows, "payout")
    adjustments = _int_refs(rows, "adjustment")
    stored = set(Callback.objects.filter(pk__in=callbacks).values_list("pk", flat=True))
    payout_rows = Payout.objects.filter(pk__in=payouts)
    if lock:
        payout_rows = payout_rows.select_for_update()
    open_payouts = {
        pk
        for pk, state in payout_rows.values_list("pk", "state")
        if state not in FINAL_PAYOUT_STATES
    }
    open_adjustments = set(
        Adjustment.objects.filter(pk__in=adjustments, state=AdjustmentState.OPEN).values_list(
            "pk", flat=True
        )
    )
    return {
        row.pk
        for row in rows
        if isinstance(row.data, dict)
        and (
            row.data.get("callback_id") in stored
            or row.data.get("payout") in open_payouts
            or row.data.get("adjustment") in open_adjustments
        )
    }


def events_archive(
    *, before: dt.datetime, directory: Path, batch_size: int = BATCH_SIZE, dry_run: bool = False
) -> ArchiveRun:
    old = Event.objects.filter(created_at__lt=before)

    def select(after: int, limit: int) -> Sequence[Event]:
        # Keyset pages over the old events; the needed ones are skipped, so a page may hold
        # fewer than `limit` rows, but only an empty page of old events ends the table.
        while True:
            page = list(old.filter(pk__gt=after).order_by("pk")[:limit])
            if not page:
                return []
            needed = _events_needed(page)
            kept = [row for row in page if row.pk not in needed]
            if kept:
                return kept
            after = page[-1].pk

    def delete(pks: list[int]) -> int:
        with transaction.atomic():
            rows = list(old.filter(pk__in=pks).select_for_update())
            needed = _events_needed(rows, lock=True)
            deleted, _ = old.filter(pk__in=[r.pk for r in rows if r.pk not in needed]).delete()
        return deleted

    return table_archive(
        name="events",
        directory=directory,
        select=select,
        delete=delete,
        batch_size=batch_size,
        dry_run=dry_run,
    )


@dataclass(frozen=True)
class ArchiveReport:
    before: dt.datetime
    dry_run: bool
    callbacks: ArchiveRun
    events: ArchiveRun

    def as_dict(self) -> dict[str, Any]:
        return {
            "before": self.before.isoformat(),
            "dry_run": self.dry_run,
            "callbacks": self.callbacks.as_dict(),
            "events": self.events.as_dict(),
        }


def records_archive(
    *,
    older_than_days: int | None = None,
    dry_run: bool = False,
    actor: str = "",
    directory: Path | None = None,
    batch_size: int = BATCH_SIZE,
) -> ArchiveReport:
    """Archive, then delete, the callbacks and events nothing needs that are older than
    `older_than_days` (default TUKTUK_RETENTION_DAYS). Callbacks go first, so the events about
    them can go in the same run. Every real run records an event; a failure records one too
    and raises (core.archive.ArchiveError when a file could not be written: nothing of that
    table was deleted)."""
    days = settings.RETENTION_DAYS if older_than_days is None else older_than_days
    if days < 1:
        raise InvalidInput(f"--older-than must be at least 1 day, not {days}")
    target = directory or settings.ARCHIVE_DIR
    before = archive_cutoff(older_than_days=days)
    done: dict[str, Any] = {"before": before.isoformat(), "older_than_days": days}
    try:
        callbacks = callbacks_archive(
            before=before, directory=target, batch_size=batch_size, dry_run=dry_run
        )
        done["callbacks"] = callbacks.as_dict()
        old_events = events_archive(
            before=before, directory=target, batch_size=batch_size, dry_run=dry_run
        )
    except Exception as exc:
        if not dry_run:
            events.event_record(
                title=events.EventTitle.ARCHIVE_FAILED,
                level=events.EventLevel.ERROR,
                message=f"{type(exc).__name__}: {exc}",
                data=done,
                actor=actor,
            )
        raise
    report = ArchiveReport(before=before, dry_run=dry_run, callbacks=callbacks, events=old_events)
    if not dry_run:
        events.event_record(
            title=events.EventTitle.RECORDS_ARCHIVED,
            message=(
                f"{callbacks.deleted} callback(s) and {old_events.deleted} event(s) from before "
                f"{timezone.localtime(before):%Y-%m-%d %H:%M} archived"
            ),
            data={**done, **report.as_dict()},
            actor=actor,
        )
    return report
