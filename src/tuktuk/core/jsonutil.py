"""JSON with money as exact decimal numbers (2500.00, not "2500.00" and not a binary float)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import simplejson


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any, *, indent: int | None = None) -> str:
    return simplejson.dumps(
        value, use_decimal=True, default=_default, ensure_ascii=False, indent=indent
    )
