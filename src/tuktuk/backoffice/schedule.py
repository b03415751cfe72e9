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
