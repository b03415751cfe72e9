"""Writes for the event log; every event also goes to the structured application log."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from tuktuk.core.models import Event, EventLevel, EventTitle

logger = logging.getLogger("tuktuk.events")

_LOG_LEVELS = {
    EventLevel.INFO: logging.INFO,
    EventLevel.WARNING: logging.WARNING,
    EventLevel.ERROR: logging.ERROR,
}

__all__ = ["EventLevel", "EventTitle", "event_record"]


class NamesADriver(Protocol):
    """Anything that carries a driver's public id (a Driver row)."""

    @property
    def driver_id(self) -> str: ...


def event_record(
    *,
    title: EventTitle,
    message: str = "",
    level: EventLevel = EventLevel.INFO,
    driver: NamesADriver | None = None,
    data: dict[str, Any] | None = None,
    actor: str = "",
) -> Event:
    driver_id = driver.driver_id if driver is not None else ""
    event = Event.objects.create(
        level=level, title=title, message=message, driver=driver_id, data=data or {}, actor=actor
    )
    logger.log(
        _LOG_LEVELS.get(EventLevel(level), logging.INFO),
        str(title),
        extra={
            "event_id": event.pk,
            "event_message": message,
            "driver": driver_id or None,
            "data": data or {},
            "actor": actor,
        },
    )
    return event
