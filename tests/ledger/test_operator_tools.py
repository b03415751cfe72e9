"""Operator money tools: adjustments, repayments, uncaptured and missed payments, roles."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import Client

from tests.support.c2b import confirmation_payload
from tests.support.factories import make_driver, pay
from tests.support.invariants import assert_invariants
from tuktuk.core.errors import InvalidInput, OperatorError
from tuktuk.core.models import Event
from tuktuk.ledger.adjustments import adjustment_add
from tuktuk.ledger.missed import missed_payment_record
from tuktuk.ledger.models import (
    Adjustment,
    AdjustmentState,
    LedgerEntry,
    MissedPayment,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from tuktuk.ledger.services import PostingOutcome
from tuktuk.ledger.uncaptured import DEPOSIT_SHARE, SEND_SHARE, uncaptured_assign
from tuktuk.payouts.models import Payout

pytestmark = pytest.mark.django_db(transaction=True)
DRIVER_PHONE = "254700000001"  # make_driver(1)'s number, normalised


# Adjustments and repayments ---------------------------------------------------------------


def test_adjustment_is_a_debt_that_never_touches_the_target_balance() -> None:
    driver = make_driver(1)
    adjustment = adjustment_add(driver_id="drv-112001", amount="500", reason="overpaid", actor="m")
    assert (adjustment.amount, adjustment.state) == (Decimal("500.00"), AdjustmentState.OPEN)
    record = adjustment.transaction
    assert record.transaction_type == TransactionType.ADJUSTMENT
    assert (record.driver_share, record.target_contribution) == (0, 0)
    driver.refresh_from_db()
    assert driver.current_balance == 0 and not LedgerEntry.objects.exists()
    assert Event.objects.get(title="Adjustment Recorded").actor == "m"


@pytest.mark.parametrize(
    ("driver_id", "amount", "reason", "message"),
    [
        ("DRV-999999", "100", "x", "no driver"),
        ("DRV-112001", "0", "x", "positive"),
        ("DRV-112001", "-5", "x", "positive"),
        ("DRV-112001", "abc", "x", "not a number"),
        ("DRV-112001", "10.123", "x", "2 decimals"),
        ("DRV-112001", "NaN", "x", "positive"),
        ("DRV-112001", "100", "  ", "reason"),
    ],
)
def test_adjustment_bad_input(driver_id: str, amount: str, reason: str, message: str) -> None:
    make_driver(1)
    with pytest.raises(OperatorError, match=message):
        adjustment_add(driver_id=driver_id, amount=amount, reason=reason, actor="m")
    assert not Adjustment.objects.exists() and not Transaction.objects.exists()


def test_repayment_from_the_drivers_own_number_settles_the_adjustment() -> None:
    driver = make_driver(1)
    adjustment = adjustment_add(driver_id="DRV-112001", amount="500", reason="overpaid", actor="m")
    result = pay("RP1", "500", msisdn="0700000001")
    assert result.outcome is PostingOutcome.REPAYMENT
    repayment = Transaction.objects.get(trans_id="RP1")
    assert repayment.transaction_type == TransactionType.DRIVER_REPAYMENT
    assert (repayment.driver_share, repayment.target_contribution) == (0, 0)
    adjustment.refresh_from_db()
    assert (adjustment.state, adjustment.repaid) == (AdjustmentState.SETTLED, Decimal("500.00"))
    driver.refresh_from_db()
    assert driver.current_balance == 0
    assert not Payout.objects.exists() and not LedgerEntry.objects.exists()
    assert_invariants()


def test_a_passenger_paying_the_same_amount_is_not_swallowed() -> None:
    driver = make_driver(1)
    adjustment = adjustment_add(driver_id="DRV-112001", amount="500", reason="overpaid", actor="m")
    result = pay("RP2", "500", msisdn="254711111111")  # a passenger, same amount
    assert result.outcome is PostingOutcome.POSTED
    assert Transaction.objects.get(trans_id="RP2").transaction_type == TransactionType.PAYMENT
    adjustment.refresh_from_db()
    assert adjustment.state == AdjustmentState.OPEN
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("250.00")
    # The driver's own number with a different amount is a fare too.
    assert pay("RP3", "400", msisdn=DRIVER_PHONE).outcome is PostingOutcome.POSTED


def test_account_reference_driver_id_pays_the_target_then_adjustments_oldest_first() -> None:
    make_driver(1, daily_target=Decimal("100"))
    first = adjustment_add(driver_id="DRV-112001", amount="300", reason="a", actor="m")
    second = adjustment_add(driver_id="DRV-112001", amount="300", reason="b", actor="m")
    assert pay("RP4", "500", account="drv-112001").outcome is PostingOutcome.SELF_PAYMENT
    first.refresh_from_db()
    second.refresh_from_db()
    assert Transaction.objects.get(trans_id="RP4").target_contribution == Decimal("100.00")
    assert (first.state, first.repaid) == (AdjustmentState.SETTLED, Decimal("300.00"))
    assert (second.state, second.repaid) == (AdjustmentState.OPEN, Decimal("100.00"))
    assert not Payout.objects.exists()


def test_repayment_over_the_c2b_endpoint(client: Client) -> None:
    make_driver(1)
    adjustment_add(driver_id="DRV-112001", amount="250", reason="overpaid", actor="m")
    payload = confirmation_payload(trans_id="RP5", amount="250", account="TUK001")
    payload["MSISDN"] = DRIVER_PHONE
    response = client.post(
        f"/c2b/{settings.CALLBACK_TOKEN}/confirmation",
        json.dumps(payload),
        content_type="application/json",
    )
    assert response.json()["ResultCode"] == 0
    assert Adjustment.objects.get().state == AdjustmentState.SETTLED


# Uncaptured payments ------------------------------------------------------------------------


def test_send_share_and_deposit_share() -> None:
    driver = make_driver(1)
    pay("UC1", "300", account="WRONG")
    pay("UC2", "300", account="WRONG2")
    sent = uncaptured_assign(
        trans_id="UC1", driver_id="DRV-112001", mode=SEND_SHARE, reason="typo", actor="m"
    )
    assert (sent.status, sent.driver_share, sent.target_contribution) == (
        TransactionStatus.COMPLETED,
        Decimal("150.00"),
        Decimal("150.00"),
    )
    assert Payout.objects.get(transaction=sent).amount == Decimal("150.00")
    deposited = uncaptured_assign(
        trans_id="UC2", driver_id="DRV-112001", mode=DEPOSIT_SHARE, reason="cash", actor="m"
    )
    assert (deposited.driver_share, deposited.target_contribution) == (0, Decimal("300.00"))
    assert not Payout.objects.filter(transaction=deposited).exists()
    assert (deposited.assigned_by, deposited.assignment) == ("m", DEPOSIT_SHARE)
    assert deposited.assigned_at is not None
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("450.00")
    with pytest.raises(InvalidInput, match="not an unassigned"):
        uncaptured_assign(
            trans_id="UC2", driver_id="DRV-112001", mode=SEND_SHARE, reason="again", actor="m"
        )
    with pytest.raises(InvalidInput, match="no payment"):
        uncaptured_assign(
            trans_id="NOPE", driver_id="DRV-112001", mode=SEND_SHARE, reason="x", actor="m"
        )
    assert_invariants()


def test_assigning_twice_concurrently_exactly_one_wins() -> None:
    make_driver(1)
    make_driver(2)
    pay("UC3", "300", account="WRONG")
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def assign(driver_id: str) -> None:
        try:
            start.wait()
            uncaptured_assign(
                trans_id="UC3", driver_id=driver_id, mode=SEND_SHARE, reason="race", actor=driver_id
            )
            outcomes.append("won")
        except InvalidInput:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=assign, args=(d,)) for d in ("DRV-112001", "DRV-112002")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "won"]
    assert LedgerEntry.objects.count() == 1 and Payout.objects.count() == 1
    assert_invariants()


def test_uncaptured_cli(capsys, people) -> None:  # type: ignore[no-untyped-def]
    make_driver(1)
    pay("UC4", "120", account="TYPO")
    call_command("uncaptured", "list", "--json")
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["trans_id"], row["amount"], row["account_typed"]) == ("UC4", 120, "TYPO")
    with pytest.raises(CommandError, match="may not"):
        call_command(
            "uncaptured",
            "assign",
            "UC4",
            "DRV-112001",
            "--send-share",
            "--reason",
            "x",
            "--user",
            "accountant",
        )
    call_command(
        "uncaptured",
        "assign",
        "UC4",
        "DRV-112001",
        "--deposit-share",
        "--reason",
        "typo",
        "--user",
        "manager",
    )
    assert "assigned to DRV-112001" in capsys.readouterr().out
    with pytest.raises(CommandError, match="not an unassigned"):
        call_command(
            "uncaptured",
            "assign",
            "UC4",
            "DRV-112001",
            "--send-share",
            "--reason",
            "x",
            "--user",
            "manager",
        )


# Missed payments ------------------------------------------------------------------------------


def missed(**changes: str) -> MissedPayment:
    fields = {
        "trans_id": "TL176BJ1M3",
        "amount": "200",
        "msisdn": "0711222333",
        "mpesa_time": "20260310101500",
        "vehicle_id": "TUK-001",
        "reason": "webhook never arrived",
        "actor": "m",
    }
    fields.update(changes)
    return missed_payment_record(**fields)  # type: ignore[arg-type]


def test_missed_payment_goes_through_the_posting_path_and_the_late_webhook_is_a_no_op(
    client: Client,
) -> None:
    driver = make_driver(1)
    record = missed()
    assert record.state == "posted"
    posted = Transaction.objects.get(trans_id="TL176BJ1M3")
    assert posted.source == "missed" and posted.target_contribution == Decimal("100.00")
    payload = confirmation_payload(trans_id="TL176BJ1M3", amount="200", account="TUK001")
    client.post(
        f"/c2b/{settings.CALLBACK_TOKEN}/confirmation",
        json.dumps(payload),
        content_type="application/json",
    )
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("100.00")
    assert Transaction.objects.count() == 1
    assert_invariants()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trans_id": "x!"}, "receipt number"),
        ({"amount": "0"}, "positive"),
        ({"amount": "ten"}, "not a number"),
        ({"msisdn": "12345"}, "not a Kenyan mobile number"),
        ({"mpesa_time": "2026-03-10"}, "YYYYMMDDHHMMSS"),
        ({"mpesa_time": "29990101000000"}, "future"),
        ({"vehicle_id": "TUK-404"}, "no vehicle"),
        ({"reason": ""}, "reason"),
    ],
)
def test_missed_payment_bad_input(changes: dict[str, str], message: str) -> None:
    make_driver(1)
    with pytest.raises(InvalidInput, match=message):
        missed(**changes)
    assert not Transaction.objects.exists() and not MissedPayment.objects.exists()


def test_missed_payment_with_a_used_trans_id_is_refused() -> None:
    make_driver(1)
    pay("TL176BJ1M4", "100")
    with pytest.raises(InvalidInput, match="already used"):
        missed(trans_id="TL176BJ1M4")


def test_missed_payment_cli(capsys, people) -> None:  # type: ignore[no-untyped-def]
    make_driver(1)
    arguments = [
        "payment", "record-missed", "--trans-id", "TL176BJ1M5", "--amount", "200",
        "--msisdn", "0711222333", "--time", "20260310101500", "--vehicle", "TUK-001",
        "--reason", "never arrived",
    ]  # fmt: skip
    with pytest.raises(CommandError, match="pass --user"):
        call_command(*arguments)
    with pytest.raises(CommandError, match="may not"):
        call_command(*arguments, "--user", "accountant")
    call_command(*arguments, "--user", "manager")
    assert "TL176BJ1M5: posted" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already used"):
        call_command(*arguments, "--user", "manager")


# Roles -----------------------------------------------------------------------------------------


def test_an_accountant_cannot_move_money(client: Client, people) -> None:  # type: ignore[no-untyped-def]
    driver = make_driver(1)
    with pytest.raises(CommandError, match="may not"):
        call_command(
            "adjustment", "add", "DRV-112001", "100", "--reason", "x", "--user", "accountant"
        )
    client.login(username="accountant", password="pw-for-tests")
    assert client.get("/admin/ledger/adjustment/").status_code == 200  # may read
    assert client.get("/admin/ledger/adjustment/add/").status_code == 403
    assert (
        client.post(
            "/admin/ledger/adjustment/add/",
            {"driver": driver.pk, "amount": "100", "description": "x"},
        ).status_code
        == 403
    )
    assert client.get("/admin/ledger/missedpayment/add/").status_code == 403
    pay("UC9", "100", account="WRONG")
    uncaptured = Transaction.objects.get(trans_id="UC9")
    assert client.get(f"/admin/ledger/uncapturedpayment/{uncaptured.pk}/assign/").status_code == 403
    assert not Adjustment.objects.exists()
    assert Transaction.objects.get(trans_id="UC9").status == TransactionStatus.UNMATCHED


def test_a_fleet_manager_can_and_the_actor_is_recorded(client: Client, people) -> None:  # type: ignore[no-untyped-def]
    driver = make_driver(1)
    call_command(
        "adjustment", "add", "DRV-112001", "100", "--reason", "helmet", "--user", "manager"
    )
    client.login(username="manager", password="pw-for-tests")
    response = client.post(
        "/admin/ledger/adjustment/add/",
        {"driver": driver.pk, "amount": "75.50", "description": "fuel advance"},
    )
    assert response.status_code == 302
    assert sorted(Adjustment.objects.values_list("amount", "created_by")) == [
        (Decimal("75.50"), "manager"),
        (Decimal("100.00"), "manager"),
    ]
    pay("UC10", "100", account="WRONG")
    uncaptured = Transaction.objects.get(trans_id="UC10")
    page = client.post(
        f"/admin/ledger/uncapturedpayment/{uncaptured.pk}/assign/",
        {"driver": driver.pk, "mode": SEND_SHARE, "reason": "typed TUK01"},
    )
    assert page.status_code == 302
    assert Transaction.objects.get(trans_id="UC10").assigned_by == "manager"
    assert set(Event.objects.exclude(actor="").values_list("actor", flat=True)) == {"manager"}
