"""Moving the wall clock in-process (time-machine): business days follow real time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

NAIROBI = ZoneInfo("Africa/Nairobi")


def nairobi(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=NAIROBI)
