"""Driver SMS against a local stand-in of Africa's Talking over HTTP (tests/support/africastalking):
sent once, delivery reports posted to our live server, outage and retry, unknown outcomes never
resent, opt-out, the automatic messages derived from committed rows."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Iterator

import httpx
import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from tests.support.africastalking import API_KEY, USERNAME, AfricasTalkingStandIn
from tests.support.clock import nairobi
from tests.support.factories import make_driver, make_operator, pay
from tests.support.live_server import LiveServer, free_port
from tuktuk.backoffice.portal.services import login_code_send
from tuktuk.backoffice.sms.africastalking import AfricasTalkingGateway
from tuktuk.backoffice.sms.derive import sms_derive
from tuktuk.backoffice.sms.models import DeliveryReport, SmsKind, SmsMessage, SmsState
from tuktuk.backoffice.sms.services import sms_broadcast, sms_retry, sms_send_to_driver, sms_work
from tuktuk.backoffice.sms.worker import SmsWorkerState, sms_pass
from tuktuk.core.models import Event, EventTitle
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.day_close import day_close_run
from tuktuk.payouts.models import Payout, PayoutState
from tuktuk.payouts.services import payout_complete

pytestmark = pytest.mark.django_db(transaction=True)


def dlr_url(server: LiveServer) -> str:
    return f"{server.url}/sms/{server.token}/delivery-report"


@pytest.fixture
def standin(live_server_proc: LiveServer) -> Iterator[AfricasTalkingStandIn]:
    with AfricasTalkingStandIn(delivery_url=dlr_url(live_server_proc)) as server:
        yield server


def gateway_for(standin: AfricasTalkingStandIn) -> AfricasTalkingGateway:
    return AfricasTalkingGateway(
        base_url=standin.url, username=USERNAME, api_key=API_KEY, sender_id="TUKTUK"
    )


def states() -> dict[int, str]:
    return dict(SmsMessage.objects.values_list("pk", "state"))


def test_each_message_is_sent_once_and_delivery_reports_set_its_state(
    standin: AfricasTalkingStandIn,
    live_server_proc: LiveServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    drivers = [make_driver(n) for n in range(1, 4)]
    result = sms_broadcast(text="Charging station closed today", actor="root")
    direct = sms_send_to_driver(driver_id="DRV-112002", text="See the office", actor="root")
    assert result.queued == 3
    gateway = gateway_for(standin)
    report = sms_work(gateway=gateway, worker="w1")
    assert report.states == {SmsState.SENT: 4}
    assert sms_work(gateway=gateway, worker="w2").states == {}  # nothing left: nothing resent
    assert all(n == 1 for n in standin.accepted_counts().values())
    assert len(standin.accepted()) == 4
    assert {r.number for r in standin.received()} == {f"+{d.mpesa_number}" for d in drivers}
    assert {r.sender for r in standin.received()} == {"TUKTUK"}
    rows = list(SmsMessage.objects.order_by("pk"))
    assert all(row.state == SmsState.SENT and row.provider_message_id for row in rows)
    assert all(row.cost == "KES 0.8000" for row in rows)

    # The provider's delivery reports, POSTed to our server like Africa's Talking does.
    direct.refresh_from_db()
    failed_one = rows[0]
    for row in rows:
        if row.pk == failed_one.pk:
            answer = standin.report(
                row.provider_message_id, status="Failed", failure_reason="UserInBlacklist"
            )
        else:
            answer = standin.report(row.provider_message_id, status="Success")
        assert answer.status_code == 200
    assert states()[failed_one.pk] == SmsState.FAILED
    assert SmsMessage.objects.get(pk=failed_one.pk).detail.endswith("UserInBlacklist")
    assert SmsMessage.objects.filter(state=SmsState.DELIVERED).count() == 3
    # A late "Buffered" report never undoes a final state.
    assert standin.report(direct.provider_message_id, status="Buffered").status_code == 200
    assert states()[direct.pk] == SmsState.DELIVERED
    assert DeliveryReport.objects.filter(message__isnull=False).count() == 5

    # An id we never sent: stored, answered 200 (so the provider stops retrying), applied to
    # nothing; a wrong token is a 404.
    stranger = {"id": "ATXid_unknown", "status": "Success", "phoneNumber": "+254700000099"}
    assert httpx.post(dlr_url(live_server_proc), data=stranger).status_code == 200
    assert DeliveryReport.objects.get(provider_message_id="ATXid_unknown").message is None
    wrong = f"{live_server_proc.url}/sms/not-the-token/delivery-report"
    assert httpx.post(wrong, data=stranger).status_code == 404
    assert httpx.post(dlr_url(live_server_proc), data={"status": "Success"}).status_code == 400
    # The API key went in a header, and nowhere else: not in a log line, not in the database.
    assert API_KEY not in caplog.text
    stored = [*SmsMessage.objects.values_list(), *DeliveryReport.objects.values_list()]
    assert API_KEY not in repr(stored)


def test_a_report_that_arrives_before_the_answer_is_applied_once_recorded(
    standin: AfricasTalkingStandIn,
) -> None:
    make_driver(1)
    message = sms_send_to_driver(driver_id="DRV-112001", text="hello", actor="root")
    standin.script("hang")
    worker = threading.Thread(
        target=sms_work, kwargs={"gateway": gateway_for(standin), "worker": "w"}
    )
    worker.start()
    assert standin.state.hanging.wait(30)
    (received,) = standin.accepted()
    assert received.message_id is not None
    # The provider reports delivery while our request still waits for its answer.
    assert standin.report(received.message_id).status_code == 200
    assert states()[message.pk] == SmsState.SENDING
    assert DeliveryReport.objects.get().applied_at is None
    standin.release()
    worker.join(30)
    message.refresh_from_db()
    assert message.state == SmsState.DELIVERED
    assert message.provider_message_id == received.message_id


def test_an_outage_retries_later_and_alerts_once(
    standin: AfricasTalkingStandIn, smtp: tuple[object, int]
) -> None:
    inbox, _ = smtp
    for n in (1, 2):
        make_driver(n)
    FleetSettings.objects.update(sms_reminder_times="")
    sms_broadcast(text="Meeting at 6", actor="root")
    standin.set_down(True)
    at = {
        "SMS_GATEWAY": "africastalking",
        "AT_USERNAME": USERNAME,
        "AT_API_KEY": API_KEY,
        "AT_BASE_URL": standin.url,
        "SMS_ALERT_AFTER_ATTEMPTS": 3,
    }
    start = timezone.now()
    with override_settings(**at):
        state = SmsWorkerState()
        for attempt in range(1, 4):
            # Each pass after the backoff (1 s, 2 s, 4 s): a refused request stops the pass.
            with time_machine.travel(start + dt.timedelta(minutes=attempt), tick=False):
                report = sms_pass(state=state, worker="w")
            queued = SmsMessage.objects.filter(state=SmsState.QUEUED)
            assert queued.count() == 2
            assert report["sent"] == {"expired": 0, "recovered": 0, SmsState.QUEUED: 1}
        assert report["outage_alert_sent"] is True
        assert len(inbox.messages) == 1  # type: ignore[attr-defined]
        assert b"refusing" in inbox.messages[0][2]  # type: ignore[attr-defined]
        assert Event.objects.filter(title=EventTitle.SMS_GATEWAY_OUTAGE).count() == 1
        with time_machine.travel(start + dt.timedelta(minutes=10), tick=False):
            sms_pass(state=state, worker="w")  # still down: no second email within the hour
        assert len(inbox.messages) == 1  # type: ignore[attr-defined]
        assert standin.accepted() == []

        standin.set_down(False)
        with time_machine.travel(start + dt.timedelta(minutes=20), tick=False):
            report = sms_pass(state=state, worker="w")
        assert report["sent"][SmsState.SENT] == 2
    assert SmsMessage.objects.filter(state=SmsState.SENT).count() == 2
    assert all(n == 1 for n in standin.accepted_counts().values())
    assert len(standin.accepted()) == 2


def test_a_provider_nobody_can_reach_is_an_outage_too() -> None:
    make_driver(1)
    sms_send_to_driver(driver_id="DRV-112001", text="hi", actor="root")
    closed = AfricasTalkingGateway(
        base_url=f"http://127.0.0.1:{free_port()}", username=USERNAME, api_key=API_KEY
    )
    assert sms_work(gateway=closed, worker="w").states == {SmsState.QUEUED: 1}
    message = SmsMessage.objects.get()
    assert message.state == SmsState.QUEUED and message.next_attempt_at is not None
    assert "not reached" in message.detail


def test_an_unknown_outcome_is_never_resent_by_the_worker(
    standin: AfricasTalkingStandIn,
) -> None:
    make_driver(1)
    message = sms_send_to_driver(driver_id="DRV-112001", text="about tomorrow", actor="root")
    standin.script("error")  # the provider takes it, then answers 500
    gateway = gateway_for(standin)
    assert sms_work(gateway=gateway, worker="w").states == {SmsState.UNKNOWN: 1}
    for _ in range(3):
        sms_work(gateway=gateway, worker="w")
    assert standin.requests() == 1
    # Its delivery report names an id we never recorded: it is matched by the number, as the
    # only message to that number whose outcome we do not know.
    (received,) = standin.accepted()
    assert received.message_id is not None
    assert standin.report(received.message_id).status_code == 200
    message.refresh_from_db()
    assert message.state == SmsState.DELIVERED

    # An operator may send an unknown (or failed) one again, knowingly.
    other = sms_send_to_driver(driver_id="DRV-112001", text="second", actor="root")
    standin.script("error")
    sms_work(gateway=gateway, worker="w")
    assert states()[other.pk] == SmsState.UNKNOWN
    with pytest.raises(Exception, match="only failed or unknown"):
        sms_retry(message_id=message.pk, actor="root", reason="x")
    sms_retry(message_id=other.pk, actor="root", reason="driver says nothing came")
    sms_work(gateway=gateway, worker="w")
    assert states()[other.pk] == SmsState.SENT
    assert standin.accepted_counts()[("+254700000001", "second")] == 2
    assert Event.objects.filter(title=EventTitle.SMS_RETRIED, actor="root").exists()


def test_a_rejected_number_is_final(standin: AfricasTalkingStandIn) -> None:
    make_driver(1)
    sms_send_to_driver(driver_id="DRV-112001", text="x", actor="root")
    standin.script("invalid")
    gateway = gateway_for(standin)
    assert sms_work(gateway=gateway, worker="w").states == {SmsState.FAILED: 1}
    sms_work(gateway=gateway, worker="w")
    assert standin.requests() == 1
    assert "InvalidPhoneNumber" in SmsMessage.objects.get().detail


def test_opt_out_is_honoured_but_a_requested_login_code_is_sent(
    standin: AfricasTalkingStandIn,
) -> None:
    make_driver(1)
    make_driver(2, sms_opt_out=True)
    result = sms_broadcast(text="all", actor="root")
    assert result.queued == 1 and result.opted_out == ["DRV-112002"]
    with pytest.raises(Exception, match="opted out"):
        sms_send_to_driver(driver_id="DRV-112002", text="x", actor="root")
    queued = sms_send_to_driver(driver_id="DRV-112001", text="later", actor="root")
    Driver.objects.filter(driver_id="DRV-112001").update(sms_opt_out=True)  # after queueing
    login_code_send(driver=Driver.objects.get(driver_id="DRV-112002"), requested_by="driver")
    report = sms_work(gateway=gateway_for(standin), worker="w")
    assert report.states == {SmsState.SKIPPED: 2, SmsState.SENT: 1}
    assert states()[queued.pk] == SmsState.SKIPPED
    (received,) = standin.received()
    assert received.number == "+254700000002" and "TukTuk Ledger code: " in received.message
    code_sms = SmsMessage.objects.get(kind=SmsKind.LOGIN_CODE)
    assert received.message.split("code: ")[1][:6].isdigit()
    assert received.message not in code_sms.body  # the code is not kept once sent


def test_never_inside_a_database_transaction(standin: AfricasTalkingStandIn) -> None:
    make_driver(1)
    sms_send_to_driver(driver_id="DRV-112001", text="x", actor="root")
    with transaction.atomic(), pytest.raises(RuntimeError, match="transaction"):
        sms_work(gateway=gateway_for(standin), worker="w")
    assert standin.requests() == 0


def test_automatic_messages_are_derived_once_from_committed_rows() -> None:
    with time_machine.travel(nairobi(2026, 3, 10, 10), tick=True):
        make_driver(1)
        FleetSettings.objects.update(sms_reminder_times="")
        assert sms_derive() == {"fares": 0, "payouts": 0, "day_closes": 0, "reminders": 0}
        pay("FARE0001", "500")  # fare SMS off (the default): nothing
        assert sms_derive()["fares"] == 0
        FleetSettings.objects.update(sms_fare_credited=True, instant_payouts=True)
        pay("FARE0002", "300")
        pay("FARE0003", "200")
        assert sms_derive()["fares"] == 2
        assert sms_derive()["fares"] == 0  # looked at again (the overlap): queued once
        texts = list(
            SmsMessage.objects.filter(kind=SmsKind.FARE_CREDITED)
            .order_by("pk")
            .values_list("body", flat=True)
        )
        # Balance after each fare: 250 (from the first) + 150, then + 100.
        assert texts[0].startswith("TukTuk: fare KES 300 at ")
        assert "your share KES 150. Today KES 400 of 3000, KES 2600 to go." in texts[0]
        assert "Today KES 500 of 3000, KES 2500 to go." in texts[1]
        payout = Payout.objects.get(transaction__trans_id="FARE0002")
        Payout.objects.filter(pk=payout.pk).update(state=PayoutState.SUBMITTED)
        payout_complete(payout, receipt="RCPT123", conversation_id="C1", desc="ok")
        assert sms_derive()["payouts"] == 1
        body = SmsMessage.objects.get(kind=SmsKind.PAYOUT_SENT).body
        assert body == "TukTuk: KES 150 sent to your M-Pesa ending 001, receipt RCPT123."
    with time_machine.travel(nairobi(2026, 3, 11, 1), tick=True):
        day_close_run()
        assert sms_derive()["day_closes"] == 1
        assert sms_derive()["day_closes"] == 0
        summary = SmsMessage.objects.get(kind=SmsKind.DAY_CLOSE).body
        assert summary == (
            "TukTuk: Tue 10 Mar closed at KES 500 of KES 3000 (short by KES 2500). "
            "Next day opens at KES -2500."
        )


def test_the_cli_queues_lists_and_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    make_driver(1)
    make_driver(2)
    user = make_operator("root")
    call_command("sms", "send", "DRV-112001", "--text", "hello", "--user", user)
    call_command("sms", "broadcast", "--driver", "DRV-112001", "--driver", "DRV-112002",
                 "--text", "hi both", "--user", user)  # fmt: skip
    call_command("sms", "status")
    out = capsys.readouterr().out
    assert re.search(r"SMS \d+ to DRV-112001 queued\.", out)
    assert "2 SMS queued" in out
    assert "Outbox (log gateway): queued 3" in out
    call_command("sms", "status", "--json", "--state", "queued")
    assert '"queued": 3' in capsys.readouterr().out
    assert SmsMessage.objects.count() == 3
    Driver.objects.filter(driver_id="DRV-112002").update(sms_opt_out=True)
    with pytest.raises(CommandError) as refused:
        call_command("sms", "send", "DRV-112002", "--text", "x", "--user", user)
    assert refused.value.returncode == 5  # Conflict: opted out
    with pytest.raises(CommandError) as empty:
        call_command("sms", "send", "DRV-112001", "--text", "  ", "--user", user)
    assert empty.value.returncode == 2
