"""The admin's "Missed payment" add form, through the real admin (issue 9, defect 6).

The form asked for YYYYMMDDHHMMSS and then refused it (the model's DateTimeField read the text);
ISO 8601 passed the form and then the service refused it with an uncaught error (a 500).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tests.support.clock import NAIROBI, nairobi
from tests.support.factories import make_driver, pay
from tuktuk.core.models import Event, EventTitle
from tuktuk.ledger.models import MissedPayment, MissedPaymentState, Transaction

ADD_URL = "/admin/ledger/missedpayment/add/"


@pytest.fixture
def pinned() -> Iterator[None]:
    with time_machine.travel(nairobi(2026, 3, 10, 15), tick=False):
        yield


@pytest.fixture
def manager_client(people: dict[str, User], pinned: None) -> Client:
    make_driver(1)
    client = Client()
    assert client.login(username="manager", password="pw-for-tests")
    return client


def form(mpesa_time: str, trans_id: str = "TL176BJ1M9") -> dict[str, str]:
    return {
        "trans_id": trans_id,
        "amount": "200",
        "msisdn": "0711222333",
        "mpesa_time": mpesa_time,
        "vehicle": "TUK-001",
        "reason": "the webhook never arrived",
    }


def vehicle_pk() -> str:
    from tuktuk.fleet.models import Vehicle

    return str(Vehicle.objects.get(vehicle_id="TUK-001").pk)


def post(client: Client, data: dict[str, str]) -> object:
    return client.post(ADD_URL, {**data, "vehicle": vehicle_pk()}, follow=True)


def test_the_add_form_documents_the_formats_it_takes(manager_client: Client) -> None:
    page = manager_client.get(ADD_URL)
    assert page.status_code == 200
    assert b"YYYYMMDDHHMMSS" in page.content and b"2026-03-10T10:15" in page.content


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("20260310101500", dt.datetime(2026, 3, 10, 10, 15, tzinfo=NAIROBI)),  # the help text
        (" 20260310101500 ", dt.datetime(2026, 3, 10, 10, 15, tzinfo=NAIROBI)),
        ("2026-03-10T10:15", dt.datetime(2026, 3, 10, 10, 15, tzinfo=NAIROBI)),
        ("2026-03-10 10:15", dt.datetime(2026, 3, 10, 10, 15, tzinfo=NAIROBI)),
        ("2026-03-10T10:15:30", dt.datetime(2026, 3, 10, 10, 15, 30, tzinfo=NAIROBI)),
        ("2026-03-10T10:15:30+03:00", dt.datetime(2026, 3, 10, 10, 15, 30, tzinfo=NAIROBI)),
        ("2026-03-10T07:15:30Z", dt.datetime(2026, 3, 10, 10, 15, 30, tzinfo=NAIROBI)),
        ("2026-03-10T09:15+02:00", dt.datetime(2026, 3, 10, 10, 15, tzinfo=NAIROBI)),
    ],
)
def test_a_missed_payment_is_saved_from_the_admin(
    manager_client: Client, typed: str, expected: dt.datetime
) -> None:
    response = post(manager_client, form(typed))
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert response.redirect_chain[-1][0] == "/admin/ledger/missedpayment/"  # type: ignore[attr-defined]
    record = MissedPayment.objects.get(trans_id="TL176BJ1M9")
    assert record.mpesa_time == expected
    assert record.state == MissedPaymentState.POSTED  # no Daraja configured: posted at once
    assert record.recorded_by == "manager"
    assert record.transaction is not None and record.transaction.amount == Decimal("200.00")
    assert record.transaction.mpesa_time == expected
    event = Event.objects.get(title=EventTitle.MISSED_RECORDED)
    assert event.actor == "manager"


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("2026-03-10", "YYYYMMDDHHMMSS"),  # a day is not a time
        ("10/03/2026 10:15", "YYYYMMDDHHMMSS"),
        ("2026031010150", "YYYYMMDDHHMMSS"),  # 13 digits
        ("20261310101500", "YYYYMMDDHHMMSS"),  # month 13
        ("2026-03-10T25:00", "YYYYMMDDHHMMSS"),
        ("yesterday", "YYYYMMDDHHMMSS"),
        ("", "This field is required"),
        ("20260311101500", "future"),  # tomorrow, by the pinned clock
        ("2026-03-10T16:00", "future"),
    ],
)
def test_a_bad_time_is_a_form_error_never_a_500(
    manager_client: Client, typed: str, message: str
) -> None:
    response = post(manager_client, form(typed))
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert not response.redirect_chain  # type: ignore[attr-defined]
    assert b"errornote" in response.content  # type: ignore[attr-defined]
    assert message.encode() in response.content  # type: ignore[attr-defined]
    assert not MissedPayment.objects.exists() and not Transaction.objects.exists()


def test_a_used_trans_id_is_a_form_error_never_a_500(manager_client: Client) -> None:
    pay("TL176BJ1M9", "100")
    response = post(manager_client, form("20260310101500"))
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert b"already used" in response.content  # type: ignore[attr-defined]
    assert not MissedPayment.objects.exists()
    assert Transaction.objects.get().amount == Decimal("100.00")


def test_an_accountant_cannot_record_one(people: dict[str, User], pinned: None) -> None:
    make_driver(1)
    client = Client()
    assert client.login(username="accountant", password="pw-for-tests")
    response = client.post(ADD_URL, {**form("20260310101500"), "vehicle": vehicle_pk()})
    assert response.status_code == 403
    assert not MissedPayment.objects.exists()
    assert reverse("admin:ledger_missedpayment_add") == ADD_URL
