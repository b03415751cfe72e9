"""The worker's scheduled checks, with alerts sent to a real SMTP server started by the test."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from email import message_from_bytes
from email.header import decode_header, make_header

import pytest
import time_machine
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from tests.support.clock import nairobi
from tests.support.factories import edit_balance_by_sql, make_driver, pay
from tests.support.live_server import free_port
from tuktuk.backoffice.worker import WorkerState, worker_tick
from tuktuk.core.models import Event
from tuktuk.ledger.models import DayClose

pytestmark = pytest.mark.django_db(transaction=True)


def body_and_subject(raw: bytes) -> tuple[str, str]:
    message = message_from_bytes(raw)
    subject = str(make_header(decode_header(message["Subject"])))
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return subject, payload.decode()


# Mid-morning, so that one interval later (4 h) is still the same business day: from 20:00 it is
# the next one, and the check runs "before day close" instead.
@time_machine.travel(nairobi(2026, 3, 10, 9), tick=False)
def test_scheduled_reconciliation_emails_one_alert_with_counts_and_amounts(smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, _ = smtp
    drivers = [make_driver(n) for n in range(1, 4)]
    for n in range(1, 4):
        pay(f"A{n}", "1000", account=f"TUK{n:03d}")
    edit_balance_by_sql(drivers[0].pk, "150")
    edit_balance_by_sql(drivers[2].pk, "-300")
    state = WorkerState()
    report = worker_tick(state)
    assert report["reconciliation"] == {
        "why": "scheduled",
        "drivers_with_discrepancies": 2,
        "alert_sent": True,
    }
    assert inbox.arrived.wait(10)
    assert len(inbox.alerts) == 1
    _, recipients, raw = inbox.alerts[0]
    assert sorted(recipients) == ["ops@fleet.example", "yuda@fleet.example"]
    subject, body = body_and_subject(raw)
    assert subject == "⚠️ Balance Discrepancies Detected - 2 Drivers"
    assert "- Total drivers: 3" in body
    assert "- Drivers with issues: 2" in body
    assert "- Total discrepancy: 450 KSH" in body
    assert "DRV-112001 Driver 1: ⚠️ DISCREPANCY DETECTED: 150 KSH extra" in body
    # Within the interval nothing runs again, not even in another worker; after it, it does.
    assert "reconciliation" not in worker_tick(state)
    assert "reconciliation" not in worker_tick(WorkerState())
    with time_machine.travel(timezone.now() + dt.timedelta(hours=4, minutes=1), tick=False):
        assert worker_tick(WorkerState())["reconciliation"]["why"] == "scheduled"
    assert len(inbox.alerts) == 2


def test_clean_check_sends_nothing(smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, _ = smtp
    make_driver(1)
    pay("B1", "100")
    report = worker_tick(WorkerState())
    assert report["reconciliation"]["alert_sent"] is False
    assert inbox.alerts == []


def test_worker_reconciles_before_closing_due_days_and_catches_up(smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, _ = smtp
    with time_machine.travel(nairobi(2026, 3, 10), tick=False):
        driver = make_driver(1)
        pay("C1", "1000")
        edit_balance_by_sql(driver.pk, "50")
    with time_machine.travel(nairobi(2026, 3, 12, 7), tick=False):
        report = worker_tick(WorkerState())
    assert report["reconciliation"]["why"] == "before day close"
    assert report["reconciliation"]["alert_sent"] is True
    assert report["days_closed"] == ["2026-03-10", "2026-03-11"] and report["closed"] == 2
    assert DayClose.objects.get(business_day=dt.date(2026, 3, 10)).cached_balance == Decimal(
        "550.00"
    )
    assert len(inbox.alerts) == 1


def test_mail_outage_does_not_stop_the_close() -> None:
    dead_port = free_port()  # nothing listens there
    with time_machine.travel(nairobi(2026, 3, 10), tick=False):
        driver = make_driver(1)
        pay("D1", "1000")
        edit_balance_by_sql(driver.pk, "50")
    with (
        override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=dead_port,
            ALERT_EMAILS=["ops@fleet.example"],
        ),
        time_machine.travel(nairobi(2026, 3, 11, 7), tick=False),
    ):
        report = worker_tick(WorkerState())
    assert report["closed"] == 1
    assert Event.objects.filter(title="Alert Email Failed").exists()


def test_worker_command_once(capsys) -> None:  # type: ignore[no-untyped-def]
    make_driver(1)
    call_command("worker", "--once")
    assert '"reconciliation"' in capsys.readouterr().out


def test_exactly_one_of_several_workers_claims_a_scheduled_run() -> None:
    import threading

    from django.db import connections

    from tuktuk.backoffice.schedule import schedule_claim

    start = threading.Barrier(4)
    claims: list[bool] = []

    def claim() -> None:
        try:
            start.wait()
            claims.append(schedule_claim(name="reconcile-scheduled", every=dt.timedelta(hours=4)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims) == [False, False, False, True]
