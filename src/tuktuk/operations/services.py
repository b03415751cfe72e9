"""Writes for the event log; every event also goes to the structured application log."""

from __future__ import annotations

import logging
from typing import Any

from tuktuk.fleet.models import Driver
from tuktuk.operations.models import Event, EventLevel

logger = logging.getLogger("tuktuk.events")

_LOG_LEVELS = {
    EventLevel.INFO: logging.INFO,
    EventLevel.WARNING: logging.WARNING,
    EventLevel.ERROR: logging.ERROR,
}

# The legacy Error Log titles operators search for.
DUPLICATE_PREVENTED = "Duplicate Transaction Prevented"
DISCREPANCY_DETECTED = "Balance Discrepancy Detected"
BALANCE_FIXED = "Balance Fixed"
CALLBACK_REJECTED = "C2B Callback Rejected"
CALLBACK_FAILED = "C2B Callback Processing Failed"
UNMATCHED_PAYMENT = "Uncaptured Payment"
DAY_CLOSED = "Day Closed"
TERMINATION_REVIEW = "Driver Flagged For Termination Review"


def event_record(
    *,
    title: str,
    message: str = "",
    level: str = EventLevel.INFO,
    driver: Driver | None = None,
    data: dict[str, Any] | None = None,
    actor: str = "",
) -> Event:
    event = Event.objects.create(
        level=level, title=title, message=message, driver=driver, data=data or {}, actor=actor
    )
    logger.log(
        _LOG_LEVELS.get(EventLevel(level), logging.INFO),
        title,
        extra={
            "event_id": event.pk,
            "event_message": message,
            "driver": driver.driver_id if driver else None,
            "data": data or {},
            "actor": actor,
        },
    )
    return event
