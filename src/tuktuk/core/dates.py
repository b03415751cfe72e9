"""Parsing days typed by people and programs: one rule for the CLI, the API and the admin."""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone

from tuktuk.core.clock import aware, mpesa_time_parse
from tuktuk.core.errors import InvalidInput

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # not \d: it matches any script's digits

# No business day of this ledger lies outside these, and the day arithmetic (the day before the
# first, the day after the last, in Africa/Nairobi) must never overflow datetime.date's range
# (0001-01-01 minus a day) nor meet the local mean time offset the zone database gives years
# before 1928 (+02:27:16, which is no valid ISO 8601 / RFC 3339 offset).
DAY_MIN = dt.date(2000, 1, 1)
DAY_MAX = dt.date(2100, 12, 31)
# The same rule for clients that read the OpenAPI schema (ECMA-262 and Python alike).
DAY_PATTERN = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


def day_in_range(day: dt.date, *, name: str = "date") -> dt.date:
    if not DAY_MIN <= day <= DAY_MAX:
        raise InvalidInput(f"{name} {day.isoformat()} is outside {DAY_MIN} .. {DAY_MAX}")
    return day


def day_parse(value: str | dt.date | None, *, name: str = "date") -> dt.date | None:
    """A day written YYYY-MM-DD, from DAY_MIN to DAY_MAX; None when not given (None or blank)."""
    if value is None:
        return None
    if isinstance(value, dt.date):
        return day_in_range(value, name=name)
    text = str(value).strip()
    if not text:
        return None
    if not _ISO_DAY.fullmatch(text):
        raise InvalidInput(f"{name} must be a day written YYYY-MM-DD, not {value!r}")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{name} {value!r} is not a real day ({exc})") from exc
    return day_in_range(day, name=name)


# ISO 8601 as people type it: a date, T or a space, hours and minutes, optional seconds (and
# fraction), optional offset. ASCII digits only (\d matches any script's digits).
_ISO_MOMENT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?",
    re.ASCII,
)
MOMENT_FORMATS = "YYYYMMDDHHMMSS (as on the M-Pesa statement) or ISO 8601, e.g. 2026-03-10T10:15"


def moment_parse(value: str | dt.datetime, *, name: str = "time") -> dt.datetime:
    """An instant typed by a person: M-Pesa's YYYYMMDDHHMMSS or ISO 8601 with or without
    seconds and offset. Without an offset it is local time (TUKTUK_TIME_ZONE, Africa/Nairobi)."""
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else aware(value)
    text = str(value).strip()
    moment = (
        mpesa_time_parse(text) if len(text) == 14 and text.isascii() and text.isdigit() else None
    )
    if moment is not None:
        return moment
    if _ISO_MOMENT.fullmatch(text):
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if timezone.is_aware(parsed) else aware(parsed)
    raise InvalidInput(f"{name} {value!r} is not {MOMENT_FORMATS}")
