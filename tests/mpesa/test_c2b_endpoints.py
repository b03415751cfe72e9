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
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.support.c2b import PAYER_MSISDN, confirmation_payload
from tests.support.factories import make_driver, make_operator
from tests.support.invariants import assert_invariants
from tuktuk.core.models import Event, EventTitle
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.duty import vehicle_assign_by
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
    make_driver(1)
    vehicle_assign_by(vehicle_id="TUK-001", driver_id=None, actor="test")
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
        # Issue 9: lone surrogates, repeated keys, non-string fields, non-ASCII digits.
        (json_text(payload_pairs(BillRefNumber="TUK001\ud800")), "application/json"),
        (json_text(payload_pairs(FirstName="\udc00")), "application/json"),
        (json_text([*payload_pairs(), ("TransAmount", "1000")]), "application/json"),
        (json_text(payload_pairs(TransID=True)), "application/json"),
        (json_text(payload_pairs(TransAmount="١٥٠")), "application/json"),
        (b'{"TransID": "OK2", "TransAmount": ' + b"1" * 5000 + b"}", "application/json"),
        (b'{"TransID": "OK3", "TransAmount": NaN}', "application/json"),
        (b"TransID=OK4&TransAmount=1&TransAmount=100", "application/x-www-form-urlencoded"),
        (b"TransID=OK5&TransAmount=100&FirstName=%ED%A0%80", "application/x-www-form-urlencoded"),
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


# Issue 9, defect 3: lone surrogates. A JSON escape such as \ud800 is plain ASCII on the wire
# but decodes to text no database can store: such a body is stored as sent, rejected with a
# reason, and never acknowledged as credited.


def json_text(pairs: list[tuple[str, object]]) -> bytes:
    """A JSON object written pair by pair (so a key may repeat), ASCII-escaped like Daraja's."""
    return ("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}").encode()


def payload_pairs(**changes: object) -> list[tuple[str, object]]:
    payload = confirmation_payload(trans_id="RS1", amount="100", account="TUK001")
    return [(key, changes.get(key, value)) for key, value in payload.items()] + [
        (key, value) for key, value in changes.items() if key not in payload
    ]


def open_around_the_clock() -> None:
    fleet = FleetSettings.load()
    fleet.operating_hours_start, fleet.operating_hours_end = dt.time(0, 0), dt.time(0, 0)
    fleet.save()


def _assert_rejected_with_event(reason: str, driver: Driver, kind: str) -> Callback:
    callback = Callback.objects.get(kind=kind)
    assert callback.state == CallbackState.REJECTED
    assert reason in callback.error
    assert balance(driver) == 0
    assert not Transaction.objects.exists() and not LedgerEntry.objects.exists()
    if kind == CallbackKind.C2B_CONFIRMATION:
        assert Event.objects.filter(
            title=EventTitle.CALLBACK_REJECTED, data__callback_id=callback.pk
        ).exists()
    return callback


LONE_SURROGATES = [
    pytest.param(payload_pairs(FirstName="\ud800"), id="high-in-name"),
    pytest.param(payload_pairs(LastName="Doe\udfff"), id="low-in-name"),
    pytest.param(payload_pairs(BillRefNumber="TUK001\ud800"), id="in-account"),
    pytest.param(payload_pairs(MSISDN="2547\udc00"), id="in-msisdn"),
    pytest.param(payload_pairs(InvoiceNumber="\ud83d"), id="in-unread-field"),
    pytest.param(payload_pairs(**{"X\udc00": "1"}), id="in-a-key"),
    pytest.param(payload_pairs(FirstName="\ude00\ud83d"), id="pair-in-wrong-order"),
]


@pytest.mark.parametrize("pairs", LONE_SURROGATES)
def test_lone_surrogate_confirmation_is_stored_rejected_and_never_acknowledged(
    client: Client, pairs: list[tuple[str, object]]
) -> None:
    driver = make_driver(1)
    body = json_text(pairs)
    assert b"\\u" in body and body.isascii()  # the escape, as it is on the wire
    response = client.post(url("confirmation"), body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"ResultCode": 1, "ResultDesc": "Rejected"}
    callback = _assert_rejected_with_event("lone surrogate", driver, CallbackKind.C2B_CONFIRMATION)
    assert callback.body == body.decode()  # stored as it arrived, the escape as literal text
    call_command(
        "replay_callbacks", "--user", make_operator()
    )  # nothing to replay: the decision is final
    callback.refresh_from_db()
    assert callback.state == CallbackState.REJECTED and balance(driver) == 0


@pytest.mark.parametrize("pairs", LONE_SURROGATES)
def test_lone_surrogate_validation_answers_a_rejection_and_stores_it(
    client: Client, pairs: list[tuple[str, object]]
) -> None:
    driver = make_driver(1)
    open_around_the_clock()
    body = json_text(pairs)
    response = client.post(url("validation"), body, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"ResultCode": "C2B00016", "ResultDesc": "Rejected"}
    callback = _assert_rejected_with_event("lone surrogate", driver, CallbackKind.C2B_VALIDATION)
    assert callback.result_code == "C2B00016" and callback.body == body.decode()


def test_a_proper_surrogate_pair_is_text_and_is_credited(client: Client) -> None:
    driver = make_driver(1)
    open_around_the_clock()
    body = json_text(payload_pairs(FirstName="Jo\U0001f600"))  # \ud83d\ude00 on the wire
    assert b"\\ud83d\\ude00" in body
    validation = client.post(url("validation"), body, content_type="application/json")
    assert validation.json()["ResultCode"] == "0"
    response = client.post(url("confirmation"), body, content_type="application/json")
    assert response.status_code == 200 and balance(driver) == Decimal("50.00")
    assert Transaction.objects.get().payer_name == "Jo\U0001f600 Doe"


@pytest.mark.parametrize("which", ["confirmation", "validation"])
def test_form_encoded_surrogate_bytes_are_rejected_not_replaced(client: Client, which: str) -> None:
    driver = make_driver(1)
    open_around_the_clock()
    # %ED%A0%80 is U+D800 encoded as if it were a character: not UTF-8.
    body = urlencode(confirmation_payload(trans_id="RS2", amount="100", account="TUK001"))
    body = body.replace("FirstName=John", "FirstName=Jo%ED%A0%80hn")
    response = client.post(url(which), body, content_type="application/x-www-form-urlencoded")
    kind = CallbackKind.C2B_CONFIRMATION if which == "confirmation" else CallbackKind.C2B_VALIDATION
    if which == "confirmation":
        assert response.status_code == 400
    else:
        assert response.json() == {"ResultCode": "C2B00016", "ResultDesc": "Rejected"}
    callback = _assert_rejected_with_event("not UTF-8", driver, kind)
    assert "%ED%A0%80" in callback.body


# Issue 9, defect 7: ambiguous bodies. A repeated key, a field that is not a JSON string, or
# digits that are not ASCII could each be read more than one way: rejected, never credited.

AMBIGUOUS = [
    pytest.param(
        [*payload_pairs(), ("TransAmount", "1000.00")],
        "TransAmount appears more than once",
        id="duplicate-amount",
    ),
    pytest.param(
        [("TransID", "RS3"), *payload_pairs()],
        "TransID appears more than once",
        id="duplicate-transid",
    ),
    pytest.param(
        [*payload_pairs(), ("FirstName", "Jane")],
        "FirstName appears more than once",
        id="duplicate-unread-field",
    ),
    pytest.param(payload_pairs(TransID=True), "TransID must be a string", id="transid-true"),
    pytest.param(payload_pairs(TransID=False), "TransID must be a string", id="transid-false"),
    pytest.param(payload_pairs(TransID=12345), "TransID must be a string", id="transid-number"),
    pytest.param(payload_pairs(TransID=None), "TransID must be a string", id="transid-null"),
    pytest.param(payload_pairs(TransID=["RS1"]), "TransID must be a string", id="transid-array"),
    pytest.param(payload_pairs(TransAmount=True), "TransAmount must be a string", id="amount-true"),
    pytest.param(payload_pairs(TransAmount=None), "TransAmount must be a string", id="amount-null"),
    pytest.param(
        payload_pairs(TransAmount=[100]), "TransAmount must be a string", id="amount-list"
    ),
    pytest.param(
        payload_pairs(BillRefNumber=True), "BillRefNumber must be a string", id="acct-true"
    ),
    pytest.param(
        payload_pairs(BillRefNumber=1), "BillRefNumber must be a string", id="acct-number"
    ),
    pytest.param(
        payload_pairs(BillRefNumber=None), "BillRefNumber must be a string", id="acct-null"
    ),
    pytest.param(payload_pairs(MSISDN=254700000001), "MSISDN must be a string", id="msisdn-number"),
    pytest.param(
        payload_pairs(TransTime=20261121103000), "TransTime must be a string", id="time-number"
    ),
    pytest.param(payload_pairs(FirstName=None), "FirstName must be a string", id="name-null"),
    pytest.param(payload_pairs(LastName={"a": 1}), "LastName must be a string", id="name-object"),
    pytest.param(payload_pairs(TransAmount="١٥٠"), "not a positive number", id="arabic-indic"),
    pytest.param(payload_pairs(TransAmount="１５０"), "not a positive number", id="fullwidth"),
    pytest.param(payload_pairs(TransAmount="१००.००"), "not a positive number", id="devanagari"),
    pytest.param(payload_pairs(TransAmount="1٠0"), "not a positive number", id="mixed-digits"),
    pytest.param(payload_pairs(TransAmount="100.٠٠"), "not a positive number", id="cents-arabic"),
]


@pytest.mark.parametrize(("pairs", "reason"), AMBIGUOUS)
def test_ambiguous_confirmation_is_stored_rejected_and_credits_nothing(
    client: Client, pairs: list[tuple[str, object]], reason: str
) -> None:
    driver = make_driver(1)
    response = client.post(url("confirmation"), json_text(pairs), content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"ResultCode": 1, "ResultDesc": "Rejected"}
    _assert_rejected_with_event(reason, driver, CallbackKind.C2B_CONFIRMATION)


@pytest.mark.parametrize(("pairs", "reason"), AMBIGUOUS)
def test_ambiguous_validation_is_refused_and_stored(
    client: Client, pairs: list[tuple[str, object]], reason: str
) -> None:
    driver = make_driver(1)
    open_around_the_clock()
    response = client.post(url("validation"), json_text(pairs), content_type="application/json")
    assert response.status_code == 200
    answer = response.json()
    assert answer["ResultDesc"] == "Rejected" and answer["ResultCode"] in {"C2B00013", "C2B00016"}
    callback = _assert_rejected_with_event(reason, driver, CallbackKind.C2B_VALIDATION)
    assert callback.result_code == answer["ResultCode"]


@pytest.mark.parametrize(
    ("amount", "credited"),
    [
        pytest.param(100, Decimal("50.00"), id="integer"),
        pytest.param(100.5, Decimal("50.50"), id="decimal"),  # share 50, contribution 50.50
    ],
)
def test_amount_as_an_ascii_json_number_is_still_credited(
    client: Client, amount: object, credited: Decimal
) -> None:
    driver = make_driver(1)
    body = json_text(payload_pairs(TransAmount=amount))
    response = client.post(url("confirmation"), body, content_type="application/json")
    assert response.status_code == 200 and balance(driver) == credited
    assert Transaction.objects.get().amount == Decimal(str(amount))


@pytest.mark.parametrize("key", ["TransAmount", "TransID", "BillRefNumber", "FirstName"])
@pytest.mark.parametrize("which", ["confirmation", "validation"])
def test_form_encoded_repeated_key_is_rejected(client: Client, which: str, key: str) -> None:
    driver = make_driver(1)
    open_around_the_clock()
    payload = confirmation_payload(trans_id="RS4", amount="1", account="TUK001")
    body = urlencode(payload) + "&" + urlencode({key: {"TransAmount": "1000"}.get(key, "RS5")})
    response = client.post(url(which), body, content_type="application/x-www-form-urlencoded")
    kind = CallbackKind.C2B_CONFIRMATION if which == "confirmation" else CallbackKind.C2B_VALIDATION
    if which == "confirmation":
        assert response.status_code == 400
    else:
        assert response.json() == {"ResultCode": "C2B00016", "ResultDesc": "Rejected"}
    _assert_rejected_with_event(f"{key} appears more than once", driver, kind)


@pytest.mark.parametrize(
    "trans_time",
    [
        pytest.param("2026112110300", id="13-digits-10:30:00-or-10:03:00"),
        pytest.param("202611211030", id="12-digits"),
        pytest.param("٢٠٢٦١١٢١١٠٣٠٠٠", id="arabic-indic"),
        pytest.param("２０２６１１２１１０３０００", id="fullwidth"),
    ],
)
def test_a_trans_time_that_reads_more_than_one_way_is_no_time(
    client: Client, trans_time: str
) -> None:
    """A bad TransTime is no reason to lose a fare (it is kept unknown), but it must not be
    read as some time: the M-Pesa time decides whose shift a fare belongs to."""
    make_driver(1)
    body = json_text(payload_pairs(TransTime=trans_time))
    response = client.post(url("confirmation"), body, content_type="application/json")
    assert response.status_code == 200
    assert Transaction.objects.get().mpesa_time is None


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters() | st.characters(categories=["Cs"]), max_size=6),
    lambda children: (
        st.lists(children, max_size=2) | st.dictionaries(st.text(max_size=4), children)
    ),
    max_leaves=4,
)
_any_digits = st.text(st.characters(categories=["Nd"]), min_size=1, max_size=4)
_READ = ("TransID", "TransAmount", "BillRefNumber", "MSISDN", "TransTime", "FirstName")


@hypothesis_settings(max_examples=60)
@given(data=st.data())
def test_any_confirmation_is_answered_stored_and_credited_only_as_sent(
    client: Client, data: st.DataObject
) -> None:
    """Whatever the fields hold: 200 or 400, the body stored, and a credited payment is
    exactly the ASCII TransID and amount that were sent, from a body with no repeated key."""
    make_driver(1)
    serial = Callback.objects.count()
    fields = {
        "TransID": st.just(f"HY{serial}") | _json_values,
        "TransAmount": st.decimals(1, 1000, places=2).map(str)
        | st.integers(1, 1000)
        | _any_digits
        | _json_values,
        "BillRefNumber": st.sampled_from(["TUK001", "nobody"]) | _json_values,
        "MSISDN": st.just(PAYER_MSISDN) | _json_values,
        "TransTime": st.just("20261121103000") | _any_digits | _json_values,
        "FirstName": st.just("John") | _json_values,
    }
    pairs = [(key, data.draw(strategy, label=key)) for key, strategy in fields.items()]
    repeated = data.draw(st.none() | st.sampled_from(_READ), label="repeated")
    if repeated:
        pairs.append((repeated, data.draw(fields[repeated], label="again")))
    response = client.post(url("confirmation"), json_text(pairs), content_type="application/json")
    assert response.status_code in {200, 400}
    callback = Callback.objects.order_by("-pk").first()
    assert callback is not None and Callback.objects.count() == serial + 1
    sent = dict(pairs)
    if response.status_code == 400:
        assert callback.state == CallbackState.REJECTED and callback.error
        assert callback.transaction is None
        return
    assert callback.state in {
        CallbackState.PROCESSED,
        CallbackState.UNMATCHED,
        CallbackState.DUPLICATE,
    }, callback.error
    assert repeated is None
    assert all(isinstance(sent[key], str) for key in _READ if key != "TransAmount")
    credited = Transaction.objects.get(pk=callback.transaction_id)
    assert credited.trans_id == sent["TransID"]
    assert str(sent["TransAmount"]).isascii()
    assert credited.amount == Decimal(str(sent["TransAmount"]))
