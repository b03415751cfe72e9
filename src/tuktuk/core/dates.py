"""Parsing days typed by people and programs: one rule for the CLI, the API and the admin."""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone

from tuktuk.core.clock import aware, mpesa_time_parse
from tuktuk.core.errors import InvalidInput

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # not \d: it matches any script's digits


def day_parse(value: str | dt.date | None, *, name: str = "date") -> dt.date | None:
    """A day written YYYY-MM-DD; None when not given (None or blank)."""
    if value is None or isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not text:
        return None
    if not _ISO_DAY.fullmatch(text):
        raise InvalidInput(f"{name} must be a day written YYYY-MM-DD, not {value!r}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{name} {value!r} is not a real day ({exc})") from exc


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
