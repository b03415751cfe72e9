"""Target reminders at the fleet's configured times, on a shifted clock: in-process with
time-machine, and a real `tuktuk worker --once` under libfaketime."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
import time_machine

from tests.support.clock import nairobi
from tests.support.factories import make_driver, pay
from tests.support.faults import real_time, shifted_env
from tests.support.live_server import REPO_ROOT, child_env
from tuktuk.backoffice.sms.derive import sms_derive
from tuktuk.backoffice.sms.models import SmsKind, SmsMessage, SmsState
from tuktuk.fleet.models import DayOff, Driver, FleetSettings

pytestmark = pytest.mark.django_db(transaction=True)

DAY = (2026, 3, 10)


def reminded() -> list[tuple[str, str]]:
    return sorted(
        (row.driver.driver_id, row.key.rsplit(":", 1)[1])
        for row in SmsMessage.objects.filter(kind=SmsKind.REMINDER).select_related("driver")
    )


def fleet_of_four() -> None:
    """DRV-112001 below target, DRV-112002 at target, DRV-112003 opted out, DRV-112004 off
    today; all paid this morning."""
    for n in range(1, 5):
        make_driver(n)
    pay("R1", "1000", account="TUK001")  # 500 toward 3000
    pay("R2", "6000", account="TUK002")  # 3000: met
    pay("R3", "100", account="TUK003")
    pay("R4", "100", account="TUK004")
    Driver.objects.filter(driver_id="DRV-112003").update(sms_opt_out=True)
    DayOff.objects.create(
        driver=Driver.objects.get(driver_id="DRV-112004"), day=dt.date(*DAY), created_by="root"
    )


def at(hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return nairobi(*DAY, hour, minute) + dt.timedelta(seconds=second)


def test_reminders_go_at_the_configured_times_to_drivers_below_target() -> None:
    with time_machine.travel(at(9), tick=False):
        fleet_of_four()
    with time_machine.travel(at(12, 59, 59), tick=False):
        assert sms_derive()["reminders"] == 0
    with time_machine.travel(at(13, 0, 5), tick=False):
        assert sms_derive()["reminders"] == 1
    with time_machine.travel(at(13, 10), tick=False):
        assert sms_derive()["reminders"] == 0  # once per time
    with time_machine.travel(at(13, 31), tick=False):
        assert sms_derive()["reminders"] == 0  # past the grace period
    with time_machine.travel(at(14), tick=False):
        pay("R5", "5000", account="TUK001")  # 500 + 2500 = 3000: met
    with time_machine.travel(at(18, 0, 1), tick=False):
        assert sms_derive()["reminders"] == 0  # everybody left is at target, off or opted out
        FleetSettings.objects.update(sms_reminder_times="18:15, 21:45")
    with time_machine.travel(at(18, 15), tick=False):
        pay("R6", "100", account="TUK002")  # unchanged: still met
        assert sms_derive()["reminders"] == 0
        Driver.objects.filter(driver_id="DRV-112002").update(current_balance="2999.00")
    with time_machine.travel(at(21, 45, 30), tick=False):
        assert sms_derive()["reminders"] == 1
    assert reminded() == [("DRV-112001", "1300"), ("DRV-112002", "2145")]
    first = SmsMessage.objects.filter(kind=SmsKind.REMINDER).order_by("pk").first()
    assert first is not None
    assert first.body == (
        "TukTuk: at 13:00 you have KES 500 of today's KES 3000 target, KES 2500 to go."
    )
    assert first.expires_at == at(14)


def test_the_worker_process_sends_reminders_on_a_shifted_clock() -> None:
    with time_machine.travel(at(9), tick=False):
        fleet_of_four()
        FleetSettings.objects.update(sms_reminder_times="13:00,18:00,22:00")
    # A real worker whose clock (libfaketime) reads 18:00:20 of that day.
    offset = at(18, 0, 20).timestamp() - real_time()
    env = child_env(**shifted_env(offset), TUKTUK_LOG_LEVEL="WARNING")
    done = subprocess.run(
        [sys.executable, "-m", "tuktuk", "worker", "--once"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert '"reminders": 1' in done.stdout
    assert reminded() == [("DRV-112001", "1800")]
    # Sent by the same pass through the default gateway (the log: no provider configured).
    message = SmsMessage.objects.get(kind=SmsKind.REMINDER)
    assert message.state == SmsState.SENT and message.gateway == "log"
