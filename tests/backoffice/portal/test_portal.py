"""The driver portal through Django's test client: logging in (PIN, one-time code, the PIN rules),
the lockout, the pages against the ledger's own reads, problem reports for operators."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from tests.backoffice.portal.conftest import PortalDriver
from tests.support.factories import make_driver
from tuktuk.backoffice.portal.models import DriverAccount, LoginCode, ProblemReport, ProblemState
from tuktuk.backoffice.portal.selectors import payer_masked, problem_reports_summary
from tuktuk.backoffice.portal.services import (
    driver_pin_set,
    driver_unlock,
    login_code_request,
    pin_check,
)
from tuktuk.backoffice.roles import ACCOUNTANTS, FLEET_MANAGERS, roles_ensure
from tuktuk.backoffice.sms.models import SmsKind, SmsMessage
from tuktuk.core.errors import InvalidInput
from tuktuk.core.models import Event, EventTitle
from tuktuk.ledger.statement import driver_statement
from tuktuk.ledger.statement_csv import statement_csv

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(client: Client, phone: str, pin: str) -> int:
    return client.post("/portal/login", {"phone": phone, "pin": pin}).status_code


def test_pin_login_and_the_pages_show_the_ledger(
    two_drivers: tuple[PortalDriver, PortalDriver],
) -> None:
    a, _ = two_drivers
    client = Client()
    assert client.get("/portal/").status_code == 302  # not logged in: to the login page
    assert log_in(client, "+254 700 000 001", a.pin) == 302
    page = client.get("/portal/").content.decode()
    statement = driver_statement(driver_id=a.driver.driver_id)
    day = statement.days[-1]
    a.driver.refresh_from_db()
    # Fares 200 and 300 at 50%: balance 250, 2750 left of 3000.
    assert f'data-balance="{a.driver.current_balance}"' in page
    assert 'data-balance="250.00"' in page and 'data-left="2750.00"' in page
    assert day.closing == a.driver.current_balance
    assert "You started today at zero" in page
    for trans_id in a.fares:
        assert trans_id in page
    assert "John" not in page and "2547•••••333" in page  # payer masked
    assert "held" in page  # instant payouts are off by default
    fare = client.get(f"/portal/fares/{a.fares[0]}").content.decode()
    assert "KES 200.00" in fare and "kept by the fleet" in fare
    assert (
        "secret note of driver 1" in client.get(f"/portal/problems/{a.report.pk}").content.decode()
    )
    deposit = client.get("/portal/deposit")
    assert deposit.status_code == 200 and b"KES 0.00" in deposit.content


def test_the_statement_csv_is_the_ledgers(two_drivers: tuple[PortalDriver, PortalDriver]) -> None:
    a, _ = two_drivers
    client = Client()
    log_in(client, a.phone, a.pin)
    today = timezone.localdate()
    since = today - dt.timedelta(days=3)
    page = client.get(f"/portal/statement?from={since}&to={today}")
    assert page.status_code == 200 and b"Download CSV" in page.content
    response = client.get(f"/portal/statement.csv?from={since}&to={today}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    expected = statement_csv(
        driver_statement(driver_id=a.driver.driver_id, date_from=since, date_to=today)
    )
    assert response.content.decode() == expected
    assert client.get(f"/portal/statement.csv?from={today}&to={since}").status_code == 400
    assert client.get("/portal/statement?from=2026-13-01").status_code == 200  # form error shown


def test_an_operators_pin_must_be_changed_and_the_pin_rules(transactional_db: None) -> None:
    make_driver(1)
    for bad in ("123", "1234", "0000", "12a4", "9876", "1234567"):
        with pytest.raises(InvalidInput):
            pin_check(bad)
    driver_pin_set(driver_id="DRV-112001", pin="2580", actor="root")
    client = Client()
    assert log_in(client, "0700000001", "2580") == 302
    assert client.get("/portal/").url == "/portal/pin"  # nothing else until a new PIN
    assert client.get("/portal/deposit").url == "/portal/pin"
    answer = client.post("/portal/pin", {"new_pin": "1111", "new_pin_again": "1111"})
    assert b"not all one digit" in answer.content
    answer = client.post("/portal/pin", {"new_pin": "7391", "new_pin_again": "7391"})
    assert answer.status_code == 302
    assert client.get("/portal/").status_code == 200
    account = DriverAccount.objects.get()
    assert not account.must_change_pin and account.pin_set_by == "driver"
    assert "7391" not in account.user.password and account.user.password.startswith("pbkdf2")
    # Changing it again needs the current one.
    assert (
        b"not right"
        in client.post(
            "/portal/pin", {"current_pin": "0001", "new_pin": "5802", "new_pin_again": "5802"}
        ).content
    )
    assert Event.objects.filter(title=EventTitle.DRIVER_PIN_CHANGED).count() == 1
    assert Group.objects.get(name="Drivers").user_set.filter(pk=account.user_id).exists()


def test_a_one_time_code_logs_in_once_then_the_driver_chooses_a_pin(
    business_hours: None, transactional_db: None
) -> None:
    make_driver(1)
    client = Client()
    answer = client.post("/portal/code", {"phone": "0700000001"})
    assert b"a code is on its way" in answer.content
    # The same answer for a number nobody has: nothing tells whose number it is.
    assert b"a code is on its way" in client.post("/portal/code", {"phone": "0799999999"}).content
    sms = SmsMessage.objects.get(kind=SmsKind.LOGIN_CODE)
    code = re.search(r"code: (\d{6})", sms.body)
    assert code is not None and sms.phone == "254700000001"
    assert LoginCode.objects.get().code_hash != code.group(1)
    # Asking again within the minute queues nothing (every SMS costs money).
    login_code_request(phone="0700000001")
    assert SmsMessage.objects.filter(kind=SmsKind.LOGIN_CODE).count() == 1

    wrong = client.post("/portal/code/login", {"phone": "0700000001", "code": "000000"})
    assert wrong.status_code == 401
    right = client.post("/portal/code/login", {"phone": "0700000001", "code": code.group(1)})
    assert right.status_code == 302 and right.url == "/portal/pin"
    assert (
        client.post("/portal/pin", {"new_pin": "8642", "new_pin_again": "8642"}).status_code == 302
    )
    again = Client().post("/portal/code/login", {"phone": "0700000001", "code": code.group(1)})
    assert again.status_code == 401  # used
    assert log_in(Client(), "0700000001", "8642") == 302
    # A code more than 10 minutes old does not work.
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=2), tick=False):
        login_code_request(phone="0700000001")
    (latest,) = SmsMessage.objects.filter(kind=SmsKind.LOGIN_CODE).order_by("-pk")[:1]
    late = re.search(r"code: (\d{6})", latest.body)
    assert late is not None
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=13), tick=False):
        expired = Client().post(
            "/portal/code/login", {"phone": "0700000001", "code": late.group(1)}
        )
    assert expired.status_code == 401


def test_failed_pins_lock_the_number_until_unlocked(
    two_drivers: tuple[PortalDriver, PortalDriver],
) -> None:
    a, b = two_drivers
    client = Client()
    statuses = [log_in(client, a.phone, "0246") for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    locked = client.post("/portal/login", {"phone": a.phone, "pin": a.pin})
    assert locked.status_code == 429 and b"Too many wrong tries" in locked.content
    # Written another way, the same number is the same lock.
    assert log_in(Client(), "+254700000001", a.pin) == 429
    # A one-time code is refused too while locked.
    assert (
        Client().post("/portal/code/login", {"phone": a.phone, "code": "123456"}).status_code == 429
    )
    assert log_in(Client(), b.phone, b.pin) == 302  # another driver is not locked
    driver_unlock(driver_id=a.driver.driver_id, actor="root")
    assert log_in(Client(), a.phone, a.pin) == 302
    assert Event.objects.filter(title=EventTitle.DRIVER_UNLOCKED, actor="root").exists()


def test_a_drivers_login_never_opens_the_admin(
    two_drivers: tuple[PortalDriver, PortalDriver],
) -> None:
    a, _ = two_drivers
    account = DriverAccount.objects.get(driver=a.driver)
    username = account.user.get_username()
    assert authenticate(username=username, password=a.pin) is None  # not by username + PIN
    answer = Client().post("/admin/login/", {"username": username, "password": a.pin})
    assert answer.status_code == 200  # the login form again
    client = Client()
    log_in(client, a.phone, a.pin)
    assert client.get("/admin/").status_code == 302  # to the admin's login
    operator = User.objects.create_user("op", password="pw-for-tests", is_staff=True)
    staff = Client()
    staff.force_login(operator)
    assert staff.get("/portal/").status_code == 302  # an operator is no driver


def test_a_problem_report_reaches_the_operators(
    two_drivers: tuple[PortalDriver, PortalDriver],
) -> None:
    a, _ = two_drivers
    client = Client()
    log_in(client, a.phone, a.pin)
    answer = client.post(
        f"/portal/problems/new?fare={a.fares[1]}",
        {"note": "The 300 fare shows 150 to target", "trans_id": a.fares[1]},
    )
    assert answer.status_code == 302
    report = ProblemReport.objects.filter(driver=a.driver).latest("pk")
    assert report.trans_id == a.fares[1] and report.state == ProblemState.OPEN
    assert report.balance_shown == a.driver.current_balance
    assert report.left_to_target_shown == 3000 - a.driver.current_balance
    summary = problem_reports_summary()
    assert summary.open == 3 and summary.latest[0].id == report.pk
    roles_ensure()
    manager = User.objects.create_user("manager", is_staff=True)
    manager.groups.add(Group.objects.get(name=FLEET_MANAGERS))
    accountant = User.objects.create_user("accountant", is_staff=True)
    accountant.groups.add(Group.objects.get(name=ACCOUNTANTS))
    for user in (manager, accountant):
        staff = Client()
        staff.force_login(user)
        page = staff.get("/admin/portal/problemreport/").content.decode()
        assert "Problem reports from drivers: 3 open" in page
        assert "The 300 fare shows 150 to target" in page
    staff = Client()
    staff.force_login(manager)
    staff.post(
        "/admin/portal/problemreport/",
        {"action": "resolve", "_selected_action": [str(report.pk)], "confirm_reason": "yes",
         "reason": "Correct: the target was met by then"},
    )  # fmt: skip
    report.refresh_from_db()
    assert report.state == ProblemState.RESOLVED and report.resolved_by == "manager"
    assert b"Correct: the target was met" in client.get(f"/portal/problems/{report.pk}").content
    assert Event.objects.filter(title=EventTitle.DRIVER_PROBLEM_REPORTED).count() == 3


def test_payer_masking() -> None:
    assert payer_masked("254712345678", "John Kamau") == "John 2547•••••678"
    assert payer_masked("", "") == ""
    assert payer_masked("2547 ***** 126", "") == "2547•••••126"


def test_an_operator_adds_a_drivers_login_in_the_admin(transactional_db: None) -> None:
    driver = make_driver(1)
    roles_ensure()
    manager = User.objects.create_user("manager", is_staff=True)
    manager.groups.add(Group.objects.get(name=FLEET_MANAGERS))
    staff = Client()
    staff.force_login(manager)
    form = staff.get("/admin/portal/driveraccount/add/")
    assert form.status_code == 200 and b'name="pin_again"' in form.content
    refused = staff.post(
        "/admin/portal/driveraccount/add/",
        {"driver": driver.pk, "pin": "1234", "pin_again": "1234"},
    )
    assert refused.status_code == 200 and not DriverAccount.objects.exists()  # a run: refused
    added = staff.post(
        "/admin/portal/driveraccount/add/",
        {"driver": driver.pk, "pin": "3904", "pin_again": "3904"},
    )
    assert added.status_code == 302
    account = DriverAccount.objects.get()
    assert account.must_change_pin and account.pin_set_by == "manager"
    assert Event.objects.filter(title=EventTitle.DRIVER_PIN_SET, actor="manager").exists()
    assert log_in(Client(), "0700000001", "3904") == 302
    # A login code waiting in the outbox is never shown in the message log.
    staff.post(
        "/admin/portal/driveraccount/",
        {"action": "send_login_code", "_selected_action": [str(account.pk)]},
    )
    sms = SmsMessage.objects.get(kind=SmsKind.LOGIN_CODE)
    code = re.search(r"code: (\d{6})", sms.body)
    assert code is not None
    page = staff.get(f"/admin/sms/smsmessage/{sms.pk}/change/").content.decode()
    assert code.group(1) not in page and "******" in page
