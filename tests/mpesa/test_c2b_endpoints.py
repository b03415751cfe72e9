"""The C2B endpoints: every rejection is stored with its reason and never touches a balance."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from urllib.parse import urlencode

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from tests.support.c2b import confirmation_payload
from tests.support.factories import make_driver, make_operator
from tests.support.invariants import assert_invariants
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.models import LedgerEntry, Transaction
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState

pytestmark = pytest.mark.django_db(transaction=True)


def url(which: str, token: str | None = None) -> str:
    return f"/c2b/{token or settings.CALLBACK_TOKEN}/{which}"


def post_json(client: Client, which: str, payload: object, **extra: object):  # type: ignore[no-untyped-def]
    return client.post(url(which), json.dumps(payload), content_type="application/json", **extra)


def balance(driver: Driver) -> Decimal:
    driver.refresh_from_db()
    return driver.current_balance


def test_confirmation_is_stored_then_posted(client: Client) -> None:
    driver = make_driver(1)
    response = post_json(
        client,
        "confirmation",
        confirmation_payload(trans_id="RK1", amount="100.00", account="TUK001"),
    )
    assert response.status_code == 200
    assert response.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    callback = Callback.objects.get()
    assert callback.state == CallbackState.PROCESSED and callback.trans_id == "RK1"
    assert json.loads(callback.body)["TransID"] == "RK1"  # the raw body is kept
    assert callback.transaction == Transaction.objects.get(trans_id="RK1")
    assert balance(driver) == Decimal("50.00")


def test_form_encoded_confirmation_is_accepted(client: Client) -> None:
    driver = make_driver(1)
    response = client.post(
        url("confirmation"),
        urlencode(confirmation_payload(trans_id="RK2", amount="60", account="tuk001")),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert balance(driver) == Decimal("30.00")


def test_wrong_token_is_404_and_changes_nothing(client: Client) -> None:
    driver = make_driver(1)
    payload = confirmation_payload(trans_id="RK3", amount="100", account="TUK001")
    response = client.post(
        url("confirmation", token="wrong"), json.dumps(payload), content_type="application/json"
    )
    assert response.status_code == 404
    assert not Callback.objects.exists() and balance(driver) == 0


def test_duplicate_answers_success_and_credits_once(client: Client) -> None:
    driver = make_driver(1)
    payload = confirmation_payload(trans_id="RK4", amount="100", account="TUK001")
    first = post_json(client, "confirmation", payload)
    second = post_json(client, "confirmation", payload)
    assert first.json() == second.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    assert sorted(Callback.objects.values_list("state", flat=True)) == ["duplicate", "processed"]
    assert balance(driver) == Decimal("50.00")


def test_unknown_account_is_acknowledged_and_kept_unmatched(client: Client) -> None:
    response = post_json(
        client, "confirmation", confirmation_payload(trans_id="RK5", amount="100", account="XX")
    )
    assert response.json()["ResultCode"] == 0
    assert Callback.objects.get().state == CallbackState.UNMATCHED
    assert Transaction.objects.get().status == "Unmatched"


MALFORMED = [
    pytest.param(b"not json", "application/json", "not JSON", id="not-json"),
    pytest.param(b"[1, 2]", "application/json", "not a JSON object", id="json-array"),
    pytest.param(b"", "application/json", "empty body", id="empty"),
    pytest.param(b"\xff\xfe\x00garbage", "application/json", "not UTF-8", id="not-utf8"),
]

BAD_FIELDS = [
    pytest.param({"TransID": None}, "TransID is missing", id="missing-transid"),
    pytest.param({"TransID": "AB'; DROP"}, "not an M-Pesa receipt", id="bad-transid"),
    pytest.param({"TransAmount": "abc"}, "not a positive number", id="amount-text"),
    pytest.param({"TransAmount": "-5"}, "not a positive number", id="amount-negative"),
    pytest.param({"TransAmount": "0"}, "must be positive", id="amount-zero"),
    pytest.param({"TransAmount": "10.123"}, "at most 2 decimals", id="amount-3-decimals"),
    pytest.param({"TransAmount": "1e5"}, "not a positive number", id="amount-exponent"),
    pytest.param({"TransAmount": "NaN"}, "not a positive number", id="amount-nan"),
    pytest.param({"TransAmount": None}, "not a positive number", id="amount-missing"),
    pytest.param({"TransAmount": "250000.01"}, "above the maximum", id="amount-absurd"),
    pytest.param({"TransAmount": {"x": 1}}, "must be a string", id="amount-object"),
]


def _assert_rejected(reason: str, driver: Driver) -> None:
    callback = Callback.objects.get()
    assert callback.state == CallbackState.REJECTED
    assert reason in callback.error
    assert balance(driver) == 0
    assert not Transaction.objects.exists() and not LedgerEntry.objects.exists()


@pytest.mark.parametrize(("body", "content_type", "reason"), MALFORMED)
def test_malformed_bodies_are_stored_as_rejected(
    client: Client, body: bytes, content_type: str, reason: str
) -> None:
    driver = make_driver(1)
    response = client.post(url("confirmation"), body, content_type=content_type)
    assert response.status_code == 400
    _assert_rejected(reason, driver)


@pytest.mark.parametrize(("change", "reason"), BAD_FIELDS)
def test_bad_fields_are_stored_as_rejected(client: Client, change: dict, reason: str) -> None:
    driver = make_driver(1)
    payload: dict[str, object] = dict(
        confirmation_payload(trans_id="RK6", amount="100", account="TUK001")
    )
    for key, value in change.items():
        if value is None:
            payload.pop(key)
        else:
            payload[key] = value
    response = post_json(client, "confirmation", payload)
    assert response.status_code == 400
    _assert_rejected(reason, driver)


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_oversized_body_is_stored_as_rejected(client: Client) -> None:
    driver = make_driver(1)
    payload = confirmation_payload(trans_id="RK7", amount="100", account="TUK001")
    payload["FirstName"] = "x" * 5000
    response = post_json(client, "confirmation", payload)
    assert response.status_code == 413
    _assert_rejected("over the 1024-byte limit", driver)


@override_settings(CALLBACK_ALLOWED_IPS=["196.201.214.0/24"])
def test_callback_from_outside_the_allowlist_credits_nothing(client: Client) -> None:
    driver = make_driver(1)
    payload = confirmation_payload(trans_id="RK8", amount="100", account="TUK001")
    response = post_json(client, "confirmation", payload, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 400
    _assert_rejected("not in TUKTUK_CALLBACK_ALLOWED_IPS", driver)
    response = post_json(client, "confirmation", payload, REMOTE_ADDR="196.201.214.200")
    assert response.status_code == 200 and balance(driver) == Decimal("50.00")


@pytest.mark.parametrize(
    ("payload_change", "code"),
    [
        pytest.param({}, "0", id="accepted"),
        pytest.param({"BillRefNumber": "NOPE"}, "C2B00012", id="unknown-account"),
        pytest.param({"TransAmount": "-1"}, "C2B00013", id="invalid-amount"),
        pytest.param({"TransAmount": "999999"}, "C2B00013", id="absurd-amount"),
        pytest.param({"TransID": None}, "C2B00016", id="missing-transid"),
    ],
)
def test_validation_answers_with_daraja_codes(
    client: Client, payload_change: dict, code: str
) -> None:
    make_driver(1)
    fleet = FleetSettings.load()
    fleet.operating_hours_start, fleet.operating_hours_end = dt.time(0, 0), dt.time(0, 0)
    fleet.save()  # open around the clock, whatever time the test runs
    payload: dict[str, object] = dict(
        confirmation_payload(trans_id="RV1", amount="100", account="TUK001")
    )
    for key, value in payload_change.items():
        if value is None:
            payload.pop(key)
        else:
            payload[key] = value
    response = post_json(client, "validation", payload)
    assert response.status_code == 200
    assert response.json() == {
        "ResultCode": code,
        "ResultDesc": "Accepted" if code == "0" else "Rejected",
    }
    stored = Callback.objects.get(kind=CallbackKind.C2B_VALIDATION)
    assert stored.result_code == code
    assert stored.state == (CallbackState.ACCEPTED if code == "0" else CallbackState.REJECTED)
    assert not Transaction.objects.exists()  # validation never posts


def test_validation_rejects_vehicle_without_driver(client: Client) -> None:
    driver = make_driver(1)
    Driver.objects.filter(pk=driver.pk).update(vehicle=None)
    payload = confirmation_payload(trans_id="RV2", amount="100", account="TUK001")
    assert post_json(client, "validation", payload).json()["ResultCode"] == "C2B00012"


def test_validation_rejects_outside_operating_hours(client: Client) -> None:
    make_driver(1)
    now = timezone.localtime()
    fleet = FleetSettings.load()
    # A one-hour window starting two hours from now: the present is outside it.
    fleet.operating_hours_start = (now + dt.timedelta(hours=2)).time().replace(microsecond=0)
    fleet.operating_hours_end = (now + dt.timedelta(hours=3)).time().replace(microsecond=0)
    fleet.save()
    payload = confirmation_payload(trans_id="RV3", amount="100", account="TUK001")
    answer = post_json(client, "validation", payload).json()
    assert answer == {"ResultCode": "C2B00016", "ResultDesc": "Rejected"}
    assert "operating hours" in Callback.objects.get().error


def _rename_table(old: str, new: str) -> None:
    with connection.cursor() as cursor:
        quote = connection.ops.quote_name
        cursor.execute(f"ALTER TABLE {quote(old)} RENAME TO {quote(new)}")


def test_callback_that_cannot_be_stored_gets_503(client: Client) -> None:
    driver = make_driver(1)
    payload = confirmation_payload(trans_id="RK9", amount="100", account="TUK001")
    _rename_table("mpesa_callback", "mpesa_callback_away")
    try:
        response = post_json(client, "confirmation", payload)
    finally:
        _rename_table("mpesa_callback_away", "mpesa_callback")
    assert response.status_code == 503
    assert balance(driver) == 0 and not Transaction.objects.exists()


def test_posting_failure_keeps_the_callback_for_replay(client: Client) -> None:
    driver = make_driver(1)
    payload = confirmation_payload(trans_id="RK10", amount="100", account="TUK001")
    _rename_table("ledger_ledgerentry", "ledger_ledgerentry_away")  # posting cannot write
    try:
        response = post_json(client, "confirmation", payload)
    finally:
        _rename_table("ledger_ledgerentry_away", "ledger_ledgerentry")
    assert response.status_code == 200  # stored: ours to finish, not Safaricom's to resend
    callback = Callback.objects.get()
    assert callback.state == CallbackState.FAILED and callback.error
    assert balance(driver) == 0 and not Transaction.objects.exists()  # rolled back whole
    call_command("replay_callbacks", "--user", make_operator())
    call_command("replay_callbacks", "--user", "root")  # a second replay finds nothing to do
    callback.refresh_from_db()
    assert callback.state == CallbackState.PROCESSED and callback.attempts == 2
    assert balance(driver) == Decimal("50.00")
    assert_invariants(sent_trans_ids=["RK10"])


def test_server_never_answers_500_to_any_body_over_http(live_server_proc) -> None:  # type: ignore[no-untyped-def]
    driver = make_driver(1)
    bodies: list[tuple[bytes, str]] = [(b, ct) for b, ct, _ in (p.values for p in MALFORMED)]
    bodies += [
        (b"{" * 5000, "application/json"),  # deeply nested
        (b"TransID=&TransAmount=x", "application/x-www-form-urlencoded"),
        (b"\x00" * 100, "application/octet-stream"),
        (b"x" * 200_000, "application/json"),  # over the 64 KiB default limit
        (json.dumps({"TransID": ["a"], "TransAmount": 5}).encode(), "application/json"),
        (json.dumps({"TransID": "OK1", "TransAmount": 10**30}).encode(), "application/json"),
    ]
    with httpx.Client(timeout=30) as http:
        for which in ("confirmation", "validation"):
            for body, content_type in bodies:
                response = http.post(
                    live_server_proc.c2b_url(which),
                    content=body,
                    headers={"Content-Type": content_type},
                )
                assert response.status_code < 500, (which, body[:40], response.status_code)
                assert "ResultCode" in response.json()
    assert balance(driver) == 0 and not Transaction.objects.exists()
    assert Callback.objects.filter(
        kind=CallbackKind.C2B_CONFIRMATION, state=CallbackState.REJECTED
    ).count() == len(bodies)
