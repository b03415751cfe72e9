"""B2C result / timeout and Transaction Status callbacks with bodies of any shape (issue 9,
defects 2 and 3): a malformed body is stored as rejected with its reason and answered 400, a
well-formed one is applied as before, and nothing a caller sends is answered 500 or 503."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.test import Client
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.support.factories import make_driver
from tuktuk.core.models import Event, EventTitle
from tuktuk.ledger.services import IncomingPayment, payment_post
from tuktuk.mpesa.models import Callback, CallbackState
from tuktuk.payouts.models import Payout, PayoutState

pytestmark = pytest.mark.django_db(transaction=True)

ENDPOINTS = ("result", "timeout", "status-result", "status-timeout")
RECEIPT = "RCPT12345"


def submitted_payout() -> Payout:
    make_driver(1)
    payment_post(
        payment=IncomingPayment(trans_id="PO1", amount=Decimal("300"), account_reference="TUK001")
    )
    payout = Payout.objects.get(transaction__trans_id="PO1")
    Payout.objects.filter(pk=payout.pk).update(
        state=PayoutState.SUBMITTED, conversation_id="AG_20261121_0001"
    )
    payout.refresh_from_db()
    return payout


def result_body(payout: Payout) -> dict[str, Any]:
    """A Daraja B2C success result for `payout`, as the simulator sends it."""
    return {
        "Result": {
            "ResultType": 0,
            "ResultCode": 0,
            "ResultDesc": "The service request is processed successfully.",
            "OriginatorConversationID": payout.originator_conversation_id,
            "ConversationID": "AG_20261121_0001",
            "TransactionID": RECEIPT,
            "ResultParameters": {
                "ResultParameter": [
                    {"Key": "TransactionAmount", "Value": int(payout.amount)},
                    {"Key": "TransactionReceipt", "Value": RECEIPT},
                    {"Key": "B2CUtilityAccountAvailableFunds", "Value": 100000.00},
                    {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "Y"},
                ]
            },
            "ReferenceData": {
                "ReferenceItem": {"Key": "QueueTimeoutURL", "Value": "https://x/b2c/t/timeout"}
            },
        }
    }


def post(client: Client, which: str, body: bytes) -> Any:
    return client.post(
        f"/b2c/{settings.CALLBACK_TOKEN}/{which}", body, content_type="application/json"
    )


def changed(body: dict[str, Any], path: tuple[str, ...], value: object) -> bytes:
    """`body` with the value at `path` replaced (or removed, for `...`), as JSON."""
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return json.dumps(body).encode()


def payout_fields(payout: Payout) -> tuple[object, ...]:
    payout.refresh_from_db()
    return (payout.state, payout.receipt, payout.result_code, payout.result_desc)


R = ("Result",)
P = ("Result", "ResultParameters")
PP = ("Result", "ResultParameters", "ResultParameter")
RD = ("Result", "ReferenceData")
RI = ("Result", "ReferenceData", "ReferenceItem")
HUGE = "1" * 5000  # Python refuses to turn more than 4300 digits into an int
MARK = 987654321  # replaced by HUGE in the JSON text: json.dumps cannot write such an int


MALFORMED: list[Any] = [
    pytest.param(R, "x", "Result must be an object", id="result-string"),
    pytest.param(R, [1], "Result must be an object", id="result-list"),
    pytest.param(P, "x", "ResultParameters must be an object", id="parameters-string"),
    pytest.param(P, [], "ResultParameters must be an object", id="parameters-empty-list"),
    pytest.param(
        P, [{"Key": "A", "Value": 1}], "ResultParameters must be an object", id="parameters-list"
    ),
    pytest.param(P, None, "ResultParameters must be an object", id="parameters-null"),
    pytest.param(P, 7, "ResultParameters must be an object", id="parameters-number"),
    pytest.param(PP, "x", "ResultParameter must be", id="parameter-string"),
    pytest.param(PP, None, "ResultParameter must be", id="parameter-null"),
    pytest.param(PP, ["x", 1], "ResultParameter must be", id="parameter-items-not-objects"),
    pytest.param(PP, [{"Key": 5, "Value": 1}], "Key must be a string", id="key-number"),
    pytest.param(PP, [{"Key": None, "Value": 1}], "Key must be a string", id="key-null"),
    pytest.param(PP, [{"Value": 1}], "Key must be a string", id="key-missing"),
    pytest.param(PP, {"Key": ["a"], "Value": 1}, "Key must be a string", id="lone-key-list"),
    pytest.param(
        PP,
        [{"Key": "TransactionReceipt", "Value": {"a": 1}}],
        "TransactionReceipt",
        id="receipt-obj",
    ),
    pytest.param(
        PP, [{"Key": "TransactionReceipt", "Value": 12345}], "TransactionReceipt", id="receipt-num"
    ),
    pytest.param(
        PP, [{"Key": "TransactionReceipt", "Value": True}], "TransactionReceipt", id="receipt-bool"
    ),
    pytest.param(
        PP, [{"Key": "TransactionAmount", "Value": True}], "TransactionAmount", id="amount-bool"
    ),
    pytest.param(
        PP, [{"Key": "TransactionAmount", "Value": MARK}], "TransactionAmount", id="amount-huge"
    ),
    pytest.param(
        PP, [{"Key": "TransactionAmount", "Value": HUGE}], "TransactionAmount", id="amount-huge-str"
    ),
    pytest.param(
        PP, [{"Key": "TransactionAmount", "Value": "١٥٠"}], "TransactionAmount", id="amount-arabic"
    ),
    pytest.param(PP, [{"Key": "Other", "Value": [1, 2]}], "Value of Other", id="unread-value-list"),
    pytest.param(
        PP, [{"Key": "Other", "Value": {"a": 1}}], "Value of Other", id="unread-value-object"
    ),
    pytest.param(PP, [{"Key": "Other", "Value": MARK}], "Value of Other", id="unread-value-huge"),
    pytest.param(
        PP,
        [{"Key": "TransactionReceipt", "Value": "A"}, {"Key": "Transaction Receipt", "Value": "B"}],
        "more than once",
        id="parameter-key-twice",
    ),
    pytest.param(RD, "x", "ReferenceData must be an object", id="reference-data-string"),
    pytest.param(RD, [], "ReferenceData must be an object", id="reference-data-list"),
    pytest.param(RD, None, "ReferenceData must be an object", id="reference-data-null"),
    pytest.param(RI, "x", "ReferenceItem must be", id="reference-item-string"),
    pytest.param(RI, ["x"], "ReferenceItem must be", id="reference-item-list-of-strings"),
    pytest.param(RI, [{"Key": 1, "Value": "v"}], "Key must be a string", id="reference-key-number"),
    pytest.param(
        RI, {"Key": "Occasion", "Value": {"a": 1}}, "Occasion", id="occasion-value-object"
    ),
    pytest.param(RI, {"Key": "Occasion", "Value": 5}, "Occasion", id="occasion-value-number"),
    pytest.param((*R, "ResultCode"), MARK, "ResultCode", id="code-huge-number"),
    pytest.param((*R, "ResultCode"), HUGE, "ResultCode", id="code-huge-string"),
    pytest.param((*R, "ResultCode"), "not a code", "ResultCode", id="code-text"),
    pytest.param((*R, "ResultCode"), "٠", "ResultCode", id="code-arabic-zero"),
    pytest.param((*R, "ResultCode"), True, "ResultCode", id="code-bool"),
    pytest.param((*R, "ResultCode"), None, "ResultCode", id="code-null"),
    pytest.param((*R, "ResultCode"), 0.0, "ResultCode", id="code-float"),
    pytest.param((*R, "ResultCode"), {"a": 0}, "ResultCode", id="code-object"),
    pytest.param((*R, "ResultCode"), ..., "ResultCode", id="code-missing"),
    pytest.param((*R, "OriginatorConversationID"), 5, "OriginatorConversationID", id="ocid-num"),
    pytest.param(
        (*R, "OriginatorConversationID"), {"a": 1}, "OriginatorConversationID", id="ocid-object"
    ),
    pytest.param(
        (*R, "OriginatorConversationID"), True, "OriginatorConversationID", id="ocid-bool"
    ),
    pytest.param((*R, "ConversationID"), ["AG"], "ConversationID", id="conversation-id-list"),
    pytest.param((*R, "ResultDesc"), {"a": 1}, "ResultDesc", id="desc-object"),
]


@pytest.mark.parametrize(("path", "value", "reason"), MALFORMED)
def test_malformed_b2c_body_is_stored_rejected_with_its_reason(
    client: Client, path: tuple[str, ...], value: object, reason: str
) -> None:
    payout = submitted_payout()
    before = payout_fields(payout)
    body = changed(result_body(payout), path, value).replace(str(MARK).encode(), HUGE.encode())
    for which in ENDPOINTS:
        response = post(client, which, body)
        assert response.status_code == 400, which
        assert response.json() == {"ResultCode": 1, "ResultDesc": "Rejected"}
    stored = list(Callback.objects.all())
    assert len(stored) == len(ENDPOINTS)
    for callback in stored:
        assert callback.state == CallbackState.REJECTED
        assert reason in callback.error, callback.error
        assert callback.body == body.decode()
    assert Event.objects.filter(title=EventTitle.CALLBACK_REJECTED).count() == len(ENDPOINTS)
    assert payout_fields(payout) == before  # a rejected body moves no payout


RAW_MALFORMED = [
    pytest.param(
        b'{"Result": {"ResultCode": 2001, "ResultCode": 0, "OriginatorConversationID": "@"}}',
        "ResultCode appears more than once",
        id="duplicate-result-code",
    ),
    pytest.param(
        b'{"Result": {"ResultCode": 0}, "Result": {"ResultCode": 1}}',
        "Result appears more than once",
        id="duplicate-result",
    ),
    pytest.param(b'{"Result": {"ResultCode": NaN}}', "NaN", id="code-nan"),
    pytest.param(b'{"Result": {"ResultCode": -Infinity}}', "Infinity", id="code-infinity"),
]


@pytest.mark.parametrize(("body", "reason"), RAW_MALFORMED)
def test_ambiguous_or_non_json_b2c_body_is_rejected(
    client: Client, body: bytes, reason: str
) -> None:
    payout = submitted_payout()
    before = payout_fields(payout)
    body = body.replace(b"@", payout.originator_conversation_id.encode())
    for which in ENDPOINTS:
        assert post(client, which, body).status_code == 400
    errors = list(Callback.objects.values_list("state", "error"))
    assert len(errors) == len(ENDPOINTS)
    assert all(state == CallbackState.REJECTED and reason in error for state, error in errors)
    assert payout_fields(payout) == before


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param((*R, "ResultDesc"), "processed\ud800", id="in-desc"),
        pytest.param(PP, [{"Key": "TransactionReceipt", "Value": "RC\udc00"}], id="in-receipt"),
        pytest.param((*R, "OriginatorConversationID"), "TTL-\ud800", id="in-ocid"),
        pytest.param(RI, {"Key": "Occasion\ud800", "Value": "x"}, id="in-reference-key"),
    ],
)
def test_b2c_body_with_a_lone_surrogate_is_rejected_not_failed(
    client: Client, path: tuple[str, ...], value: object
) -> None:
    """Defect 3 on the B2C side: the text cannot be stored in a payout, so it is refused."""
    payout = submitted_payout()
    before = payout_fields(payout)
    body = changed(result_body(payout), path, value)
    assert body.isascii() and b"\\ud" in body
    for which in ENDPOINTS:
        assert post(client, which, body).status_code == 400
    for callback in Callback.objects.all():
        assert callback.state == CallbackState.REJECTED
        assert "lone surrogate" in callback.error
        assert callback.body == body.decode()
    assert payout_fields(payout) == before


# Shapes Daraja really sends: these keep working exactly as before.


def test_lone_result_parameter_object_and_reference_item_list_complete(client: Client) -> None:
    payout = submitted_payout()
    body = result_body(payout)
    body["Result"]["ResultParameters"]["ResultParameter"] = {
        "Key": "TransactionReceipt",
        "Value": "RCPT777",
    }
    body["Result"]["ReferenceData"]["ReferenceItem"] = [
        {"Key": "QueueTimeoutURL", "Value": "https://x"},
        {"Key": "Occasion", "Value": payout.originator_conversation_id},
    ]
    body["Result"]["OriginatorConversationID"] = "not-ours"  # found by the Occasion instead
    assert post(client, "result", json.dumps(body).encode()).status_code == 200
    payout.refresh_from_db()
    assert (payout.state, payout.receipt) == (PayoutState.COMPLETED, "RCPT777")
    assert Callback.objects.get().state == CallbackState.PROCESSED


@pytest.mark.parametrize("code", [2001, "2001", "SFC_IC0003"])
def test_failure_without_parameters_fails_the_payout(client: Client, code: object) -> None:
    payout = submitted_payout()
    body = result_body(payout)
    del body["Result"]["ResultParameters"], body["Result"]["ReferenceData"]
    body["Result"]["ResultCode"] = code
    assert post(client, "result", json.dumps(body).encode()).status_code == 200
    payout.refresh_from_db()
    assert (payout.state, payout.result_code) == (PayoutState.FAILED, str(code))


def test_status_result_with_spaced_keys_and_a_missing_value_completes(client: Client) -> None:
    payout = submitted_payout()
    Payout.objects.filter(pk=payout.pk).update(state=PayoutState.UNKNOWN)
    body = {
        "Result": {
            "ResultType": 0,
            "ResultCode": "0",
            "ResultDesc": "The service request is processed successfully.",
            "OriginatorConversationID": "query-1",
            "ConversationID": "AG_q",
            "TransactionID": "SIM0000000",
            "ResultParameters": {
                "ResultParameter": [
                    {"Key": "Originator Conversation ID", "Value": "other"},
                    {"Key": "DebitPartyCharges"},  # Daraja leaves some values out
                    {"Key": "ReceiptNo", "Value": "RCPT99"},
                    {"Key": "TransactionStatus", "Value": "Completed"},
                    {"Key": "Amount", "Value": 150.0},
                    {"Key": "InitiatedTime", "Value": 20261121103000},
                ]
            },
            "ReferenceData": {
                "ReferenceItem": {"Key": "Occasion", "Value": payout.originator_conversation_id}
            },
        }
    }
    assert post(client, "status-result", json.dumps(body).encode()).status_code == 200
    payout.refresh_from_db()
    assert (payout.state, payout.receipt) == (PayoutState.COMPLETED, "RCPT99")


# Any shape at all: never a 5xx, always stored, a rejection always has a reason and never
# moves a payout.

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    # Surrogates included: json.dumps writes a lone one as an escape, as an attacker could.
    | st.text(st.characters() | st.characters(categories=["Cs"]), max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.sampled_from(
    [
        "TransactionReceipt",
        "Transaction Receipt",
        "ReceiptNo",
        "TransactionAmount",
        "Amount",
        "TransactionStatus",
        "OriginatorConversationID",
        "Originator Conversation ID",
        "ConversationID",
        "Other",
    ]
)


def shapes(ocid: str) -> st.SearchStrategy[Any]:
    item = st.one_of(
        st.fixed_dictionaries(
            {"Key": KEYS, "Value": st.one_of(st.just(RECEIPT), st.just(ocid), json_values)}
        ),
        st.fixed_dictionaries({"Key": KEYS | json_values}, optional={"Value": json_values}),
        json_values,
    )
    parameters = st.one_of(
        st.fixed_dictionaries({"ResultParameter": st.lists(item, max_size=4) | item}),
        json_values,
    )
    reference_item = st.fixed_dictionaries(
        {"Key": st.just("Occasion") | json_values, "Value": st.just(ocid) | json_values}
    )
    reference = st.one_of(
        st.fixed_dictionaries(
            {"ReferenceItem": reference_item | st.lists(reference_item | json_values, max_size=3)}
        ),
        json_values,
    )
    result = st.fixed_dictionaries(
        {},
        optional={
            "ResultCode": st.sampled_from([0, 1, 2001, "0", "2001"]) | json_values,
            "ResultDesc": st.just("ok") | json_values,
            "OriginatorConversationID": st.just(ocid) | json_values,
            "ConversationID": st.just("AG_20261121_0001") | json_values,
            "ResultParameters": parameters,
            "ReferenceData": reference,
        },
    )
    return st.one_of(st.fixed_dictionaries({"Result": result}), json_values)


@hypothesis_settings(max_examples=100)
@given(data=st.data())
def test_any_json_shape_is_answered_stored_and_never_moves_a_payout_when_rejected(
    client: Client, data: st.DataObject
) -> None:
    Callback.objects.all().delete()
    payout = Payout.objects.first() or submitted_payout()
    which = data.draw(st.sampled_from(ENDPOINTS))
    Payout.objects.filter(pk=payout.pk).update(  # the state each endpoint can move
        state=PayoutState.UNKNOWN if which.startswith("status") else PayoutState.SUBMITTED,
        receipt="",
        result_code="",
        result_desc="",
    )
    before = payout_fields(payout)
    body = json.dumps(data.draw(shapes(payout.originator_conversation_id))).encode()
    response = post(client, which, body)
    assert response.status_code in {200, 400}
    callback = Callback.objects.get()
    assert callback.body == body.decode()
    if response.status_code == 400:
        assert callback.state == CallbackState.REJECTED and callback.error
        assert payout_fields(payout) == before
    else:
        assert callback.state in {
            CallbackState.PROCESSED,
            CallbackState.DUPLICATE,
            CallbackState.UNMATCHED,
        }, callback.error


def test_b2c_endpoints_never_answer_5xx_over_http(live_server_proc) -> None:  # type: ignore[no-untyped-def]
    payout = submitted_payout()
    base = result_body(payout)
    bodies = [changed(base, path, value) for path, value, _ in (p.values for p in MALFORMED)]
    bodies = [b.replace(str(MARK).encode(), HUGE.encode()) for b in bodies]
    bodies += [b for b, _ in (p.values for p in RAW_MALFORMED)]
    bodies += [changed(base, (*R, "ResultDesc"), "\ud800"), b"{" * 5000, b"\xff\xfe"]
    with httpx.Client(timeout=30) as http:
        for which in ENDPOINTS:
            for body in bodies:
                response = http.post(
                    f"{live_server_proc.url}/b2c/{live_server_proc.token}/{which}",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                assert response.status_code == 400, (which, body[:60], response.status_code)
    assert Callback.objects.filter(state=CallbackState.REJECTED).count() == 4 * len(bodies)
    assert not Callback.objects.exclude(state=CallbackState.REJECTED).exists()
    payout.refresh_from_db()
    assert payout.state == PayoutState.SUBMITTED
