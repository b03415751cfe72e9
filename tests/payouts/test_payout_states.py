"""Payout state changes: callbacks in any order, at most once; operator tools."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from tests.support.factories import make_driver
from tuktuk.core.errors import OperatorError
from tuktuk.core.models import Event
from tuktuk.fleet.models import Override
from tuktuk.ledger.services import IncomingPayment, payment_post
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.payouts.models import Payout, PayoutState
from tuktuk.payouts.services import (
    payout_resolve,
    payout_retry,
    payouts_claim,
    payouts_recover_stale,
    payouts_release,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("business_hours")]


def share_payout(trans_id: str = "PO1", amount: str = "300", **driver_overrides: object) -> Payout:
    make_driver(1, **driver_overrides)
    payment_post(
        payment=IncomingPayment(
            trans_id=trans_id, amount=Decimal(amount), account_reference="TUK001"
        )
    )
    return Payout.objects.get(transaction__trans_id=trans_id)


def set_state(payout: Payout, state: str, **fields: object) -> None:
    Payout.objects.filter(pk=payout.pk).update(state=state, **fields)


def result_body(payout: Payout, *, code: int = 0, receipt: str = "RCPT12345") -> dict:
    result: dict = {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": "The service request is processed successfully."
        if code == 0
        else "The initiator information is invalid.",
        "OriginatorConversationID": payout.originator_conversation_id,
        "ConversationID": "AG_20261121_0001",
        "TransactionID": receipt,
    }
    if code == 0:
        result["ResultParameters"] = {
            "ResultParameter": [
                {"Key": "TransactionAmount", "Value": int(payout.amount)},
                {"Key": "TransactionReceipt", "Value": receipt},
            ]
        }
    return {"Result": result}


def post(client: Client, which: str, body: object) -> int:
    response = client.post(
        f"/b2c/{settings.CALLBACK_TOKEN}/{which}", json.dumps(body), content_type="application/json"
    )
    assert response.status_code < 500
    return response.status_code


def state_of(payout: Payout) -> str:
    payout.refresh_from_db()
    return payout.state


def test_instant_off_holds_then_release_moves_each_exactly_once() -> None:
    payout = share_payout()
    assert payout.state == PayoutState.HELD and payout.amount == Decimal("150.00")
    with pytest.raises(OperatorError):
        payouts_release(actor="ops")
    assert payouts_release(actor="ops", everything=True) == 1
    assert payouts_release(actor="ops", everything=True) == 0
    assert state_of(payout) == PayoutState.PENDING
    assert Event.objects.filter(title="Payouts Released", actor="ops").count() == 1


def test_instant_on_creates_pending_and_claim_is_exclusive() -> None:
    payout = share_payout(instant_payout=Override.ENABLE)
    assert payout.state == PayoutState.PENDING
    first = payouts_claim(worker="w1", limit=10)
    second = payouts_claim(worker="w2", limit=10)
    assert [p.pk for p in first] == [payout.pk] and second == []
    assert state_of(payout) == PayoutState.SENDING
    payout.refresh_from_db()
    assert payout.claimed_by == "w1" and payout.attempts == 1


def test_result_completes_once_and_duplicate_is_a_no_op(client: Client) -> None:
    payout = share_payout()
    set_state(payout, PayoutState.SUBMITTED, conversation_id="AG_20261121_0001")
    assert post(client, "result", result_body(payout)) == 200
    assert post(client, "result", result_body(payout)) == 200
    payout.refresh_from_db()
    assert (payout.state, payout.receipt) == (PayoutState.COMPLETED, "RCPT12345")
    states = list(
        Callback.objects.filter(kind=CallbackKind.B2C_RESULT).values_list("state", flat=True)
    )
    assert sorted(states) == ["duplicate", "processed"]
    assert Event.objects.filter(title="Payout Completed").count() == 1


def test_result_before_our_own_record_still_lands(client: Client) -> None:
    payout = share_payout()
    set_state(payout, PayoutState.SENDING, claimed_at=timezone.now())  # request in flight
    post(client, "result", result_body(payout))
    assert state_of(payout) == PayoutState.COMPLETED


def test_failure_result_fails_with_code_and_event(client: Client) -> None:
    payout = share_payout()
    set_state(payout, PayoutState.SUBMITTED)
    post(client, "result", result_body(payout, code=2001))
    payout.refresh_from_db()
    assert (payout.state, payout.result_code) == (PayoutState.FAILED, "2001")
    assert "initiator" in payout.result_desc
    assert Event.objects.filter(title="Payout Failed").count() == 1


def test_timeout_notice_is_unknown_and_a_later_result_wins(client: Client) -> None:
    payout = share_payout()
    set_state(payout, PayoutState.SUBMITTED)
    timeout = result_body(payout, code=1)
    timeout["Result"]["ResultDesc"] = "The service request timed out."
    post(client, "timeout", timeout)
    assert state_of(payout) == PayoutState.UNKNOWN
    post(client, "result", result_body(payout))
    assert state_of(payout) == PayoutState.COMPLETED
    post(client, "timeout", timeout)  # a late notice never undoes a result
    assert state_of(payout) == PayoutState.COMPLETED


def status_body(payout: Payout, *, status: str | None, code: int = 0) -> dict:
    parameters = [{"Key": "OriginatorConversationID", "Value": payout.originator_conversation_id}]
    if status:
        parameters += [
            {"Key": "ReceiptNo", "Value": "RCPT99"},
            {"Key": "TransactionStatus", "Value": status},
        ]
    return {
        "Result": {
            "ResultType": 0,
            "ResultCode": code,
            "ResultDesc": "ok" if code == 0 else "The transaction could not be found.",
            "OriginatorConversationID": "query-1",
            "ConversationID": "AG_q",
            "ResultParameters": {"ResultParameter": parameters},
            "ReferenceData": {
                "ReferenceItem": {"Key": "Occasion", "Value": payout.originator_conversation_id}
            },
        }
    }


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("Completed", 0, PayoutState.COMPLETED),
        ("Failed", 0, PayoutState.FAILED),
        (None, 1, PayoutState.PENDING),  # never reached M-Pesa: safe to send
    ],
)
def test_status_query_resolves_unknown(client: Client, status, code, expected) -> None:  # type: ignore[no-untyped-def]
    payout = share_payout()
    set_state(payout, PayoutState.UNKNOWN)
    post(client, "status-result", status_body(payout, status=status, code=code))
    assert state_of(payout) == expected
    if expected == PayoutState.COMPLETED:
        assert payout.receipt == "RCPT99"


def test_worker_killed_while_sending_leaves_unknown_never_pending() -> None:
    payout = share_payout()
    set_state(payout, PayoutState.SENDING, claimed_at=timezone.now() - dt.timedelta(hours=1))
    assert payouts_recover_stale() == 1
    assert state_of(payout) == PayoutState.UNKNOWN


def test_retry_only_after_a_known_failure_with_a_new_id() -> None:
    payout = share_payout()
    for state in (PayoutState.UNKNOWN, PayoutState.SUBMITTED, PayoutState.COMPLETED):
        set_state(payout, state)
        with pytest.raises(OperatorError, match="only failed"):
            payout_retry(payout_id=payout.pk, actor="ops", reason="again")
    set_state(payout, PayoutState.FAILED, attempts=1)
    old_id = payout.originator_conversation_id
    with pytest.raises(OperatorError, match="reason"):
        payout_retry(payout_id=payout.pk, actor="ops", reason=" ")
    retried = payout_retry(payout_id=payout.pk, actor="ops", reason="number fixed")
    assert retried.state == PayoutState.PENDING
    assert retried.originator_conversation_id == f"{old_id}-R2"
    set_state(payout, PayoutState.FAILED, attempts=3)
    again = payout_retry(payout_id=payout.pk, actor="ops", reason="again")
    assert again.originator_conversation_id == f"{old_id}-R4"


def test_operator_resolves_unknown_only(client: Client) -> None:
    payout = share_payout()
    set_state(payout, PayoutState.UNKNOWN)
    with pytest.raises(OperatorError, match="receipt"):
        payout_resolve(payout_id=payout.pk, actor="ops", reason="portal", completed=True)
    resolved = payout_resolve(
        payout_id=payout.pk, actor="ops", reason="seen in portal", completed=True, receipt="QX1"
    )
    assert (resolved.state, resolved.receipt, resolved.resolved_by) == (
        PayoutState.COMPLETED,
        "QX1",
        "ops",
    )
    with pytest.raises(OperatorError, match="not unknown"):
        payout_resolve(payout_id=payout.pk, actor="ops", reason="x", completed=False)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b"{}", b'{"Result": {}}', b'{"Result": "x"}', b"\xff\x00"],
)
def test_malformed_b2c_callbacks_are_stored_rejected_and_change_nothing(
    client: Client, body: bytes
) -> None:
    payout = share_payout()
    set_state(payout, PayoutState.SUBMITTED)
    for which in ("result", "timeout", "status-result", "status-timeout"):
        response = client.post(
            f"/b2c/{settings.CALLBACK_TOKEN}/{which}", body, content_type="application/json"
        )
        assert response.status_code == 400
    assert state_of(payout) == PayoutState.SUBMITTED
    assert set(Callback.objects.values_list("state", flat=True)) == {CallbackState.REJECTED}


def test_unmatched_result_is_kept(client: Client) -> None:
    payout = share_payout()
    body = result_body(payout)
    body["Result"]["OriginatorConversationID"] = "nobody"
    body["Result"]["ConversationID"] = "nobody"
    assert post(client, "result", body) == 200
    assert Callback.objects.get().state == CallbackState.UNMATCHED
    assert state_of(payout) == PayoutState.HELD


def test_cli_release_retry_resolve(capsys, people) -> None:  # type: ignore[no-untyped-def]
    payout = share_payout()
    with pytest.raises(CommandError, match="may not"):
        call_command("payouts", "release", "--all", "--user", "accountant")
    assert state_of(payout) == PayoutState.HELD
    call_command("payouts", "release", "--driver", "DRV-112001", "--user", "manager")
    assert "Released 1" in capsys.readouterr().out
    call_command("payouts", "list", "--state", "pending")
    assert payout.originator_conversation_id in capsys.readouterr().out
    with pytest.raises(CommandError, match="only failed"):
        call_command("payouts", "retry", str(payout.pk), "--reason", "x", "--user", "manager")
    set_state(payout, PayoutState.UNKNOWN)
    call_command(
        "payouts", "resolve", str(payout.pk), "--failed", "--reason", "gone", "--user", "manager"
    )
    assert state_of(payout) == PayoutState.FAILED
    with pytest.raises(CommandError, match="no driver"):
        call_command("payouts", "release", "--driver", "DRV-999999", "--user", "manager")


def test_payout_admin_actions_need_the_payout_permission(client: Client, people) -> None:  # type: ignore[no-untyped-def]
    payout = share_payout()
    selection = {"action": "release_held", "_selected_action": [payout.pk]}
    client.login(username="accountant", password="pw-for-tests")
    assert client.get("/admin/payouts/payout/").status_code == 200  # may look
    client.post("/admin/payouts/payout/", selection)
    assert state_of(payout) == PayoutState.HELD  # may not release
    client.login(username="manager", password="pw-for-tests")
    client.post("/admin/payouts/payout/", selection)
    assert state_of(payout) == PayoutState.PENDING
    assert Event.objects.get(title="Payouts Released").actor == "manager"
