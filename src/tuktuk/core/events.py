"""Writes for the event log; every event also goes to the structured application log."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tuktuk.core.models import Event, EventLevel, EventTitle

logger = logging.getLogger("tuktuk.events")

_LOG_LEVELS = {
    EventLevel.INFO: logging.INFO,
    EventLevel.WARNING: logging.WARNING,
    EventLevel.ERROR: logging.ERROR,
}

__all__ = ["EventDraft", "EventLevel", "EventTitle", "event_record", "events_record"]


class NamesADriver(Protocol):
    """Anything that carries a driver's public id (a Driver row)."""

    @property
    def driver_id(self) -> str: ...


@dataclass(frozen=True)
class EventDraft:
    """One event to record with others (events_record)."""

    title: EventTitle
    message: str = ""
    level: EventLevel = EventLevel.INFO
    driver: NamesADriver | None = None
    data: dict[str, Any] | None = None
    actor: str = ""


def event_record(
    *,
    title: EventTitle,
    message: str = "",
    level: EventLevel = EventLevel.INFO,
    driver: NamesADriver | None = None,
    data: dict[str, Any] | None = None,
    actor: str = "",
) -> Event:
    draft = EventDraft(title, message, level, driver, data, actor)
    event = _event_row(draft)
    event.save(force_insert=True)
    _log(event)
    return event


def events_record(*, drafts: Sequence[EventDraft]) -> list[Event]:
    """event_record for many events in one INSERT (a day close of thousands of drivers)."""
    created = Event.objects.bulk_create([_event_row(draft) for draft in drafts])
    for event in created:
        _log(event)
    return created


def _event_row(draft: EventDraft) -> Event:
    return Event(
        level=draft.level,
        title=draft.title,
        message=draft.message,
        driver=draft.driver.driver_id if draft.driver is not None else "",
        data=draft.data or {},
        actor=draft.actor,
    )


def _log(event: Event) -> None:
    logger.log(
        _LOG_LEVELS.get(EventLevel(event.level), logging.INFO),
        str(event.title),
        extra={
            "event_id": event.pk,
            "event_message": event.message,
            "driver": event.driver or None,
            "data": event.data,
            "actor": event.actor,
        },
    )
