"""Periodic jobs shared by several workers: each run is claimed by exactly one of them."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from tuktuk.backoffice.models import ScheduledRun


def schedule_claim(*, name: str, every: dt.timedelta) -> bool:
    """True for the one caller that may run `name` now (it last ran at least `every` ago)."""
    now = timezone.now()
    claimed = ScheduledRun.objects.filter(name=name, last_run_at__lte=now - every).update(
        last_run_at=now
    )
    if claimed:
        return True
    if ScheduledRun.objects.filter(name=name).exists():
        return False
    try:
        with transaction.atomic():
            ScheduledRun.objects.create(name=name, last_run_at=now)
    except IntegrityError:
        return False  # another worker created it first
    return True


def schedule_mark_get(*, name: str) -> dt.datetime | None:
    """A moment kept under `name` (e.g. how far a periodic job has covered), if any."""
    return ScheduledRun.objects.filter(name=name).values_list("last_run_at", flat=True).first()


def schedule_mark_advance(*, name: str, to: dt.datetime) -> None:
    """Move the moment kept under `name` forward to `to` (never back: a slow run finishing
    after a later one must not undo it)."""
    if ScheduledRun.objects.filter(name=name, last_run_at__lt=to).update(last_run_at=to):
        return
    if ScheduledRun.objects.filter(name=name).exists():
        return
    try:
        with transaction.atomic():
            ScheduledRun.objects.create(name=name, last_run_at=to)
    except IntegrityError:
        schedule_mark_advance(name=name, to=to)  # created meanwhile: advance that one
