"""The one source of "now". Everything asks here (or Django's timezone.now, which this wraps),
so tests pin time in one place (time-machine) and business days are always Nairobi's."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone


def now() -> dt.datetime:
    """The current instant, timezone-aware (UTC)."""
    return timezone.now()


def local(moment: dt.datetime) -> dt.datetime:
    """`moment` in the configured zone (Africa/Nairobi unless TUKTUK_TIME_ZONE says otherwise)."""
    return timezone.localtime(moment)


def local_now() -> dt.datetime:
    return timezone.localtime(timezone.now())


def aware(naive: dt.datetime) -> dt.datetime:
    """A wall-clock time read in the configured zone (e.g. M-Pesa's TransTime)."""
    return timezone.make_aware(naive, timezone.get_current_timezone())
