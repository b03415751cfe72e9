"""JSON with money as exact decimal numbers (2500.00, not "2500.00" and not a binary float)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import simplejson


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        offset = value.utcoffset()
        # ISO 8601 / RFC 3339 offsets are whole minutes; the zone database gives Africa/Nairobi
        # its local mean time (+02:27:16) before 1928. Such a moment is written in UTC instead.
        if offset is not None and offset % dt.timedelta(minutes=1):
            value = value.astimezone(dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any, *, indent: int | None = None) -> str:
    return simplejson.dumps(
        value, use_decimal=True, default=_default, ensure_ascii=False, indent=indent
    )
