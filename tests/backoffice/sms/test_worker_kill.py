"""Each SMS is sent exactly once by two real `tuktuk worker` processes, one of them killed (kill
-9) inside a request to the Africa's Talking stand-in, then both restarted.

The killed worker's message reached the provider but its answer was lost: it becomes `unknown`
and is never sent again; the provider's delivery report then names an id we never recorded,
and it is matched by the number. Every other message is sent once and delivered.
"""

from __future__ import annotations

import signal

import pytest

from tests.support.africastalking import AfricasTalkingStandIn, at_env
from tests.support.factories import make_driver
from tests.support.live_server import LiveServer
from tests.support.payouts import Workers, wait_until
from tuktuk.backoffice.sms.models import SmsMessage, SmsState
from tuktuk.backoffice.sms.services import sms_broadcast, sms_send_to_driver
from tuktuk.fleet.models import FleetSettings

pytestmark = pytest.mark.django_db(transaction=True)

DRIVERS = 12


def unsettled() -> bool:
    return SmsMessage.objects.filter(state__in=[SmsState.QUEUED, SmsState.SENDING]).exists()


def test_two_workers_and_a_kill_send_each_message_exactly_once(
    live_server_proc: LiveServer,
) -> None:
    FleetSettings.objects.update(sms_reminder_times="")  # only the messages queued here
    for n in range(1, DRIVERS + 1):
        make_driver(n)
    sms_broadcast(text="Fleet meeting Friday 9:00", actor="root")
    for n in range(1, DRIVERS + 1):
        sms_send_to_driver(
            driver_id=f"DRV-{112000 + n}", text=f"Your code word is {n}", actor="root"
        )
    total = SmsMessage.objects.count()
    assert total == 2 * DRIVERS
    delivery = f"{live_server_proc.url}/sms/{live_server_proc.token}/delivery-report"
    with AfricasTalkingStandIn(delivery_url=delivery) as standin:
        crew = Workers({**at_env(standin), "TUKTUK_SMS_SENDING_STALE_SECONDS": "1"})
        standin.script(*(["ok"] * 6), "hang")
        try:
            crew.start(2)
            assert standin.state.hanging.wait(120), "no worker reached the hanging request"
            crew.kill(signal.SIGKILL)
            in_flight = SmsMessage.objects.filter(state=SmsState.SENDING).count()
            assert in_flight >= 1  # the killed request's message, at least
            standin.release()  # the stand-in stops waiting for a client that is gone
            crew.start(2)
            wait_until(lambda: not unsettled(), timeout=120, what="every message settled")
        finally:
            crew.kill(signal.SIGTERM)
        unknown = list(SmsMessage.objects.filter(state=SmsState.UNKNOWN))
        assert len(unknown) >= 1
        requests_before_reports = standin.requests()
        # The provider reports every message it accepted, to our live server.
        for answer in standin.report_all():
            assert answer.status_code == 200
        accepted = standin.accepted()
        counts = standin.accepted_counts()
        assert all(n == 1 for n in counts.values()), counts.most_common(3)  # never twice
        assert standin.requests() == requests_before_reports  # nothing was sent again

    delivered = SmsMessage.objects.filter(state=SmsState.DELIVERED)
    assert delivered.count() == len(accepted)
    for message in SmsMessage.objects.all():
        reached = counts.get((f"+{message.phone}", message.body), 0)
        if message.state == SmsState.DELIVERED:
            assert reached == 1
        else:
            # Claimed, then killed before its request left: unknown, and never sent.
            assert message.state == SmsState.UNKNOWN and reached == 0, message
    # The hung request's message reached the provider: its report was matched by number.
    assert delivered.filter(detail__startswith="matched").count() >= 1
