"""One rule for a payment's standing in the ledger: reconciliation, the statement and the
admin's transaction verification say the same thing about the same payments."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from tests.support.factories import make_driver, pay
from tuktuk.backoffice.legacy import fix_driver_balance, reconcile_driver_balance
from tuktuk.ledger.models import Transaction, TransactionSource
from tuktuk.ledger.payment_status import FindingKind, payment_statuses
from tuktuk.ledger.services import IncomingPayment, PostingOutcome, payment_post
from tuktuk.ledger.statement import driver_statement

pytestmark = pytest.mark.django_db(transaction=True)


def _lose_entry(trans_id: str) -> None:
    # The legacy failure: the balance moved but the entry was lost (SQL around the ORM).
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM ledger_ledgerentry WHERE transaction_id = %s",
            [Transaction.objects.get(trans_id=trans_id).pk],
        )


def _views(driver_id: str) -> tuple[set[str], set[str]]:
    """The TransIDs with a problem, as reconciliation and as the statement report them."""
    reconciliation = {p["trans_id"] for p in reconcile_driver_balance(driver_id)["problems"]}
    statement = driver_statement(driver_id=driver_id)
    text = "\n".join(statement.problems)
    in_statement = {t.trans_id for t in statement.transactions if f"payment {t.trans_id}:" in text}
    return reconciliation, in_statement


def test_missing_then_fixed_agrees_everywhere(admin_client: Client) -> None:
    driver = make_driver(1)
    pay("PS1", "1000")
    pay("PS2", "600")
    _lose_entry("PS2")
    (status,) = [s for s in payment_statuses(Transaction.objects.all()) if s.trans_id == "PS2"]
    assert status.entry_amount is None and status.missing == Decimal("300.00")
    assert status.problem is not None and status.problem.type is FindingKind.MISSING_ENTRY

    reconciliation, statement = _views("DRV-112001")
    assert reconciliation == statement == {"PS2"}
    page = admin_client.get(reverse("admin:fleet_driver_verification", args=[driver.pk]))
    assert b"missing_entry PS2" in page.content

    fix_driver_balance("DRV-112001", auto_fix=True, reason="lost entry", actor="t")
    reconciliation, statement = _views("DRV-112001")
    assert reconciliation == statement == set()
    page = admin_client.get(reverse("admin:fleet_driver_verification", args=[driver.pk]))
    assert b"missing_entry" not in page.content


def test_redeliveries_are_counted_once_posted_and_shown_as_information() -> None:
    make_driver(1)
    first = pay("PS3", "500")
    assert first.outcome is PostingOutcome.POSTED
    for _ in range(2):
        assert pay("PS3", "500").outcome is PostingOutcome.DUPLICATE
    # An operator recording a payment the webhook had delivered is no redelivery.
    recorded = payment_post(
        payment=IncomingPayment(trans_id="PS3", amount=Decimal(500), account_reference="TUK001"),
        source=TransactionSource.MISSED,
    )
    assert recorded.outcome is PostingOutcome.DUPLICATE
    assert Transaction.objects.get(trans_id="PS3").redeliveries == 2
    result = reconcile_driver_balance("DRV-112001")
    assert result["problems"] == [] and result["needs_fix"] is False
    assert [i["detail"] for i in result["information"]] == ["delivered 3 times, posted 1 time"]


def test_an_entry_that_differs_is_a_mismatch_until_corrected() -> None:
    make_driver(1)
    pay("PS4", "1000")  # contribution 500
    with connection.cursor() as cursor:
        # Around the ORM and the append-only trigger's UPDATE rule: replace the entry.
        tx = Transaction.objects.get(trans_id="PS4")
        cursor.execute("DELETE FROM ledger_ledgerentry WHERE transaction_id = %s", [tx.pk])
        cursor.execute(
            "INSERT INTO ledger_ledgerentry (driver_id, business_day, kind, amount, "
            "transaction_id, note, created_at) SELECT driver_id, business_day, 'contribution', "
            "400, id, '', received_at FROM ledger_transaction WHERE id = %s",
            [tx.pk],
        )
    (problem,) = reconcile_driver_balance("DRV-112001")["problems"]
    assert problem["type"] == "entry_mismatch" and "400.00 KSH differs" in problem["detail"]
    fixed = fix_driver_balance("DRV-112001", auto_fix=True, reason="entry differed", actor="t")
    assert fixed["entries_posted"] == 1
    assert reconcile_driver_balance("DRV-112001")["problems"] == []
    assert driver_statement(driver_id="DRV-112001").problems == []
