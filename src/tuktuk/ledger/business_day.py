"""The business day: day D ends at the day close (operating_hours_end, local time).

00:00 (or any end at or before the start) means the close falls after midnight, on D + 1.
Anything posted after a close belongs to the next day.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from tuktuk.core.clock import aware
from tuktuk.fleet.models import FleetSettings


def close_is_after_midnight(fleet: FleetSettings) -> bool:
    return fleet.operating_hours_end <= fleet.operating_hours_start


def business_day_of(moment: dt.datetime, *, fleet: FleetSettings) -> dt.date:
    local = timezone.localtime(moment)
    end = fleet.operating_hours_end
    if close_is_after_midnight(fleet):
        return local.date() - dt.timedelta(days=1) if local.time() < end else local.date()
    return local.date() + dt.timedelta(days=1) if local.time() >= end else local.date()


def day_close_moment(day: dt.date, *, fleet: FleetSettings) -> dt.datetime:
    """When business day `day` closes, as an aware datetime."""
    close_date = day + dt.timedelta(days=1) if close_is_after_midnight(fleet) else day
    naive = dt.datetime.combine(close_date, fleet.operating_hours_end)
    return aware(naive)


def day_open_moment(day: dt.date, *, fleet: FleetSettings) -> dt.datetime:
    """When business day `day` starts: the previous day's close."""
    return day_close_moment(day - dt.timedelta(days=1), fleet=fleet)


def within_operating_hours(moment: dt.datetime, *, fleet: FleetSettings) -> bool:
    local = timezone.localtime(moment).time()
    start, end = fleet.operating_hours_start, fleet.operating_hours_end
    if close_is_after_midnight(fleet):
        return local >= start or local < end
    return start <= local < end
