"""The back office: every admin page renders, and the balance cannot be typed in."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tests.support.factories import make_driver
from tuktuk.ledger.services import IncomingPayment, payment_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client: Client) -> Client:
    User.objects.create_superuser("boss", "boss@example.com", "pw-for-tests")
    client.login(username="boss", password="pw-for-tests")
    return client


def test_every_changelist_renders(admin_client_logged_in: Client) -> None:
    driver = make_driver(1)
    payment_post(
        payment=IncomingPayment(trans_id="AD1", amount=Decimal(100), account_reference="TUK001")
    )
    for model in [
        "fleet/fleetsettings",
        "fleet/vehicle",
        "fleet/driver",
        "ledger/transaction",
        "ledger/ledgerentry",
        "ledger/dayclose",
        "ledger/balancecorrection",
        "mpesa/callback",
        "mpesa/payout",
        "operations/event",
    ]:
        response = admin_client_logged_in.get(f"/admin/{model}/")
        assert response.status_code == 200, model
    page = admin_client_logged_in.get(reverse("admin:fleet_driver_change", args=[driver.pk]))
    assert page.status_code == 200
    assert b"50.00" in page.content  # the balance is shown


def test_current_balance_is_read_only_in_the_admin(admin_client_logged_in: Client) -> None:
    driver = make_driver(1)
    url = reverse("admin:fleet_driver_change", args=[driver.pk])
    response = admin_client_logged_in.post(
        url,
        {
            "name": "Renamed",
            "mpesa_number": driver.mpesa_number,
            "vehicle": driver.vehicle_id,
            "is_active": "on",
            "target_sharing": "Follow Global",
            "instant_payout": "Follow Global",
            "current_balance": "99999",
            "left_to_target": "0",
            "corrections-TOTAL_FORMS": "0",
            "corrections-INITIAL_FORMS": "0",
            "day_closes-TOTAL_FORMS": "0",
            "day_closes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    driver.refresh_from_db()
    assert driver.name == "Renamed"
    assert driver.current_balance == 0 and driver.left_to_target == 0


def test_ledger_rows_cannot_be_added_or_edited_in_the_admin(admin_client_logged_in: Client) -> None:
    make_driver(1)
    payment_post(
        payment=IncomingPayment(trans_id="AD2", amount=Decimal(100), account_reference="TUK001")
    )
    assert admin_client_logged_in.get("/admin/ledger/ledgerentry/add/").status_code == 403
    assert admin_client_logged_in.get("/admin/ledger/transaction/add/").status_code == 403
