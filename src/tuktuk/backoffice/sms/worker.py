"""The worker's SMS pass (called by backoffice.worker.worker_tick, guarded there so that an SMS
outage or bug never stops payouts or the day close): derive the automatic messages, send what
is due through the configured gateway, and email operators once when the gateway keeps
refusing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from tuktuk.backoffice.alerts import alert_recipients, alert_safely
from tuktuk.backoffice.schedule import schedule_claim
from tuktuk.backoffice.sms.derive import sms_derive
from tuktuk.backoffice.sms.gateway import SmsGateway, gateway_from_settings
from tuktuk.backoffice.sms.models import SmsMessage
from tuktuk.backoffice.sms.services import sms_outage_unalerted, sms_work
from tuktuk.core import events

OUTAGE_ALERT_EVERY = dt.timedelta(hours=1)


@dataclass
class SmsWorkerState:
    # Kept between passes (one HTTP connection pool).
    gateway: SmsGateway | None = None


def sms_outage_alert_send(*, messages: list[SmsMessage]) -> bool:
    recipients = alert_recipients()
    events.event_record(
        title=events.EventTitle.SMS_GATEWAY_OUTAGE,
        level=events.EventLevel.ERROR,
        message=f"{len(messages)} SMS refused {settings.SMS_ALERT_AFTER_ATTEMPTS} times or more "
        f"by the {settings.SMS_GATEWAY} gateway; last: {messages[0].detail}",
        data={"sms": [m.pk for m in messages]},
    )
    if not recipients:
        return False
    lines = [
        f"The SMS gateway ({settings.SMS_GATEWAY}) keeps refusing messages. They stay queued "
        "and are tried again on every worker pass; none is lost or sent twice.",
        "",
        *(f"  SMS {m.pk} ({m.kind}), {m.attempts} attempts: {m.detail}" for m in messages),
        "",
        "Check the provider's status and balance, and TUKTUK_AT_USERNAME / TUKTUK_AT_API_KEY; "
        "`tuktuk sms status` lists the outbox.",
    ]
    EmailMessage(
        subject=f"⚠️ SMS Gateway Refusing Messages - {len(messages)} Waiting",
        body="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        connection=get_connection(fail_silently=False),
    ).send()
    return True


def sms_pass(*, state: SmsWorkerState, worker: str) -> dict[str, Any]:
    report: dict[str, Any] = {"queued": sms_derive()}
    if state.gateway is None:
        state.gateway = gateway_from_settings()
    report["gateway"] = state.gateway.name
    report["sent"] = sms_work(gateway=state.gateway, worker=worker).as_dict()
    waiting = sms_outage_unalerted()
    # One alert an hour while the outage lasts, whichever worker gets there first.
    if waiting and schedule_claim(name="sms-outage-alert", every=OUTAGE_ALERT_EVERY):
        report["outage_alert_sent"] = alert_safely(sms_outage_alert_send, messages=waiting)
    return report
