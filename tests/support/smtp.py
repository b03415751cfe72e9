"""A real SMTP server (aiosmtpd) started by the tests, and Django pointed at it."""

from __future__ import annotations

import email
import threading
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from django.test import override_settings

from tests.support.live_server import free_port


def _is_report(raw: bytes) -> bool:
    subject = str(email.message_from_bytes(raw)["Subject"] or "")
    return subject.startswith(("Daily report ", "Weekly report "))


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.arrived = threading.Event()

    @property
    def alerts(self) -> list[tuple[str, list[str], bytes]]:
        """The messages but the daily and weekly reports, which the worker also mails after a
        day close (backoffice.reports)."""
        return [m for m in self.messages if not _is_report(m[2])]

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        self.arrived.set()
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=port,
            EMAIL_USE_TLS=False,
            EMAIL_USE_SSL=False,
            ALERT_EMAILS=["ops@fleet.example", "yuda@fleet.example"],
        ):
            yield inbox, port
    finally:
        controller.stop()
