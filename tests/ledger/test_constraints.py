"""Money rules that hold even when someone writes around the ORM: the database refuses."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from tests.support.factories import make_driver, pay
from tuktuk.ledger.models import EntryKind, LedgerEntry, Transaction
from tuktuk.payouts.models import Payout

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("business_hours")]


def refused(**changes: object) -> None:
    """An UPDATE (it bypasses save() and every Python check) that the database must refuse."""
    with pytest.raises(IntegrityError), transaction.atomic():
        Transaction.objects.filter(trans_id="C1").update(**changes)


def test_transaction_rules_are_database_constraints() -> None:
    make_driver(1)
    pay("C1", "300")  # 150 share, 150 contribution
    refused(driver_share=Decimal("150.50"), target_contribution=Decimal("149.50"))  # cents
    refused(driver_share=Decimal("100"))  # A != share + contribution
    refused(driver_share=Decimal("310"), target_contribution=Decimal("-10"))  # negative
    refused(amount=Decimal("0"), driver_share=0, target_contribution=0)  # not positive
    refused(driver=None)  # a completed payment has a driver
    tx = Transaction.objects.get(trans_id="C1")
    assert (tx.amount, tx.driver_share, tx.target_contribution) == (
        Decimal("300.00"),
        Decimal("150.00"),
        Decimal("150.00"),
    )


def test_fractional_amounts_add_up_on_every_database() -> None:
    # SQLite stores decimals as binary floats; the split check still holds exactly.
    make_driver(1)
    for n, amount in enumerate(["50.01", "0.03", "1234.57", "99.99"]):
        pay(f"F{n}", amount)
    for tx in Transaction.objects.all():
        assert tx.amount == tx.driver_share + tx.target_contribution


def test_one_transaction_per_trans_id_one_entry_and_one_payout_per_payment() -> None:
    driver = make_driver(1)
    pay("C2", "300")
    tx = Transaction.objects.get(trans_id="C2")
    with pytest.raises(IntegrityError), transaction.atomic():
        Transaction.objects.create(
            trans_id="C2",
            status="Unmatched",
            source="c2b",
            amount=Decimal("1"),
            received_at=timezone.now(),
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            driver=driver,
            business_day=tx.business_day,
            kind=EntryKind.CONTRIBUTION,
            amount=Decimal("1"),
            transaction=tx,
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Payout.objects.create(
            transaction=tx,
            driver=driver,
            phone=driver.mpesa_number,
            amount=Decimal("1"),
            state="held",
            originator_conversation_id="another-id",
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Payout.objects.filter(transaction=tx).update(amount=Decimal("150.50"))  # whole shillings
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(  # a contribution always belongs to a transaction
            driver=driver, business_day=tx.business_day, kind=EntryKind.CONTRIBUTION, amount=1
        )
