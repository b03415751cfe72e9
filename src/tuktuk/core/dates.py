"""Parsing days typed by people and programs: one rule for the CLI, the API and the admin."""

from __future__ import annotations

import datetime as dt
import re

from tuktuk.core.clock import aware
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


def moment_parse(value: str | None, *, name: str = "time") -> dt.datetime | None:
    """A moment typed by a person: YYYY-MM-DD HH:MM[:SS] (local time, TUKTUK_TIME_ZONE) or an
    ISO datetime with its offset; None when not given."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{name} must be written YYYY-MM-DD HH:MM (local time), not {value!r}"
        ) from None
    return moment if moment.tzinfo else aware(moment)
