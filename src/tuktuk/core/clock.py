"""Wall-clock times read in the configured zone (Africa/Nairobi unless TUKTUK_TIME_ZONE says
otherwise). "Now" is Django's timezone.now() everywhere, so tests pin it in one place
(time-machine); this module is where naive local times become instants."""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone

MPESA_TIME_FORMAT = "%Y%m%d%H%M%S"  # M-Pesa's TransTime, e.g. 20261201235959
# strptime takes one-digit fields ("2026112110300" is 10:30:00 or 10:03:00): 14 ASCII digits.
_MPESA_TIME = re.compile(r"[0-9]{14}", re.ASCII)


def aware(naive: dt.datetime) -> dt.datetime:
    """A wall-clock time in the configured zone (TUKTUK_TIME_ZONE), as an instant. The default
    zone, not the "current" one: nothing activates another, and looking the current one up
    (a context-local) cost the posting engine 13 % of its time, once per confirmation."""
    return timezone.make_aware(naive, timezone.get_default_timezone())


def mpesa_time_parse(raw: str) -> dt.datetime | None:
    """An M-Pesa time (YYYYMMDDHHMMSS, local), or None when it is not one."""
    if not _MPESA_TIME.fullmatch(raw):
        return None
    # Fixed-width fields, as strptime(MPESA_TIME_FORMAT) reads 14 digits (its %Y takes four,
    # the rest two each to fill 14), at a tenth of its cost: once per confirmation posted.
    try:
        naive = dt.datetime(
            int(raw[0:4]), int(raw[4:6]), int(raw[6:8]), int(raw[8:10]), int(raw[10:12]),
            int(raw[12:14]),
        )  # fmt: skip
    except ValueError:
        return None
    return aware(naive)
