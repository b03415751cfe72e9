"""Reads of the SMS outbox (the CLI's status, the admin, a dashboard later)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count

from tuktuk.backoffice.sms.models import SmsKind, SmsMessage, SmsState
from tuktuk.backoffice.sms.texts import LOGIN_CODE_REDACTED
from tuktuk.fleet.selectors import driver_get


@dataclass(frozen=True)
class SmsRow:
    id: int
    created_at: dt.datetime
    kind: str
    driver_id: str | None
    phone: str
    state: str
    attempts: int
    provider_status: str
    detail: str
    text: str


@dataclass(frozen=True)
class SmsStatus:
    gateway: str
    counts: dict[str, int]
    messages: list[SmsRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway,
            "counts": self.counts,
            "messages": [dict(row.__dict__) for row in self.messages],
        }


def sms_status(
    *,
    state: str | None = None,
    kind: str | None = None,
    driver_id: str | None = None,
    limit: int = 30,
) -> SmsStatus:
    counts = {
        row["state"]: row["n"]
        for row in SmsMessage.objects.values("state").annotate(n=Count("id")).order_by("state")
    }
    rows = SmsMessage.objects.select_related("driver").order_by("-created_at", "-id")
    if state:
        rows = rows.filter(state=state)
    if kind:
        rows = rows.filter(kind=kind)
    if driver_id:
        rows = rows.filter(driver=driver_get(ref=driver_id))
    messages = [
        SmsRow(
            id=m.pk,
            created_at=m.created_at,
            kind=m.kind,
            driver_id=m.driver.driver_id if m.driver else None,
            phone=m.phone,
            state=m.state,
            attempts=m.attempts,
            provider_status=m.provider_status,
            detail=m.detail,
            text=LOGIN_CODE_REDACTED
            if m.kind == SmsKind.LOGIN_CODE and m.state in (SmsState.QUEUED, SmsState.SENDING)
            else m.body,
        )
        for m in rows[: max(0, limit)]
    ]
    return SmsStatus(gateway=settings.SMS_GATEWAY, counts=counts, messages=messages)
