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
        "fleet/assignment",
        "fleet/dayoff",
        "fleet/rosterperiod",
        "ledger/transaction",
        "ledger/ledgerentry",
        "ledger/dayclose",
        "ledger/balancecorrection",
        "mpesa/callback",
        "payouts/payout",
        "core/event",
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
    assert driver.current_balance == 0 and driver.left_to_target == Decimal("3000.00")


def test_ledger_rows_cannot_be_added_or_edited_in_the_admin(admin_client_logged_in: Client) -> None:
    make_driver(1)
    payment_post(
        payment=IncomingPayment(trans_id="AD2", amount=Decimal(100), account_reference="TUK001")
    )
    assert admin_client_logged_in.get("/admin/ledger/ledgerentry/add/").status_code == 403
    assert admin_client_logged_in.get("/admin/ledger/transaction/add/").status_code == 403


def test_reconciliation_check_action_then_fix_after_confirmation(
    admin_client_logged_in: Client,
) -> None:
    from django.db import connection

    from tuktuk.ledger.models import BalanceCorrection

    driver, other = make_driver(1), make_driver(2)
    payment_post(
        payment=IncomingPayment(trans_id="AD3", amount=Decimal(1000), account_reference="TUK001")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE fleet_driver SET current_balance = current_balance + 150 WHERE id = %s",
            [driver.pk],
        )
    changelist = reverse("admin:fleet_driver_changelist")
    selection = {"action": "reconciliation_check", "_selected_action": [driver.pk, other.pk]}
    page = admin_client_logged_in.post(changelist, selection)
    assert page.status_code == 200
    text = page.content.decode()
    assert "DISCREPANCY DETECTED: 150 KSH extra" in text and "Fix 1 driver(s)" in text
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("650.00")  # the check alone changes nothing

    without_reason = admin_client_logged_in.post(changelist, {**selection, "confirm_fix": "yes"})
    assert without_reason.status_code == 302
    assert not BalanceCorrection.objects.exists()

    fixed = admin_client_logged_in.post(
        changelist, {**selection, "confirm_fix": "yes", "reason": "found by the check"}, follow=True
    )
    assert "Balance fixed: 650 → 500 (adjusted 150 KSH)" in fixed.content.decode()
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("500.00")
    assert BalanceCorrection.objects.get().actor == "boss"
    change_page = admin_client_logged_in.get(reverse("admin:fleet_driver_change", args=[driver.pk]))
    assert b"found by the check" in change_page.content  # the audit trail on the driver page


def test_fix_needs_permission(client: Client) -> None:
    from django.contrib.auth.models import Permission

    User.objects.create_user("viewer", password="pw-for-tests", is_staff=True).user_permissions.add(
        *Permission.objects.filter(codename__in=["view_driver", "change_driver"])
    )
    client.login(username="viewer", password="pw-for-tests")
    driver = make_driver(1)
    selection = {"action": "reconciliation_check", "_selected_action": [driver.pk]}
    page = client.post(reverse("admin:fleet_driver_changelist"), selection)
    assert page.status_code == 200 and b"Fix " not in page.content
    refused = client.post(
        reverse("admin:fleet_driver_changelist"), {**selection, "confirm_fix": "yes", "reason": "x"}
    )
    assert refused.status_code == 403


def test_transaction_verification_view(admin_client_logged_in: Client) -> None:
    driver = make_driver(1)
    payment_post(
        payment=IncomingPayment(trans_id="AD4", amount=Decimal(300), account_reference="TUK001")
    )
    page = admin_client_logged_in.get(reverse("admin:fleet_driver_verification", args=[driver.pk]))
    text = page.content.decode()
    assert page.status_code == 200
    assert "AD4" in text and "Balance is correct" in text and "contribution" in text
    bad_date = admin_client_logged_in.get(
        reverse("admin:fleet_driver_verification", args=[driver.pk]) + "?date=nonsense"
    )
    assert bad_date.status_code == 200 and "YYYY-MM-DD" in bad_date.content.decode()
