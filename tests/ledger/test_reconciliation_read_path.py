"""The reconciliation read path (issue 15): the database picks the few payments that may be
findings and reads only the business days asked about. Its answers are held here to the rule
(payment_status.PaymentStatus) applied to every payment one by one, in each state a payment's
ledger can be in, whatever days the database is told to read."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from tests.support.clock import nairobi
from tests.support.factories import make_driver, pay
from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import EntryKind, LedgerEntry, Transaction
from tuktuk.ledger.payment_status import PaymentStatus, payment_statuses, payments_check
from tuktuk.ledger.selectors import DayState, balance_snapshots

pytestmark = pytest.mark.django_db(transaction=True)
D = dt.date(2026, 3, 10)
D1 = D + dt.timedelta(days=1)


def _delete_entry(trans_id: str) -> LedgerEntry:
    """The legacy failure, around the ORM: the payment's own entry is gone."""
    entry = LedgerEntry.objects.get(transaction__trans_id=trans_id)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM ledger_ledgerentry WHERE id = %s", [entry.pk])
    return entry


def _replace_entry(
    trans_id: str, *, amount: str | None = None, business_day: dt.date | None = None
) -> None:
    """The payment's own entry, written again with another amount or on another day."""
    entry = _delete_entry(trans_id)
    LedgerEntry.objects.create(
        driver_id=entry.driver_id,
        business_day=business_day or entry.business_day,
        kind=EntryKind.CONTRIBUTION,
        amount=entry.amount if amount is None else Decimal(amount),
        transaction_id=entry.transaction_id,
    )


def _correct(trans_id: str, amount: str) -> None:
    payment = Transaction.objects.get(trans_id=trans_id)
    LedgerEntry.objects.create(
        driver_id=payment.driver_id,
        business_day=D,
        kind=EntryKind.CORRECTION,
        amount=Decimal(amount),
        corrects=payment,
        note="test",
    )


def _every_state() -> None:
    """Payments of D (contribution: half the fare) in each state, over three drivers."""
    with time_machine.travel(nairobi(2026, 3, 10), tick=False):
        for number in (1, 2, 3):
            make_driver(number)
        pay("IN-ORDER", "1000")
        pay("LOST", "600")
        _delete_entry("LOST")
        pay("DIFFERS", "1000")
        _replace_entry("DIFFERS", amount="400")
        pay("CORRECTED", "1000", account="TUK002")  # 400 + a correction of 100: in order
        _replace_entry("CORRECTED", amount="400")
        _correct("CORRECTED", "100")
        pay("HALF-CORRECTED", "1000", account="TUK002")  # 400 + 50: still 50 short
        _replace_entry("HALF-CORRECTED", amount="400")
        _correct("HALF-CORRECTED", "50")
        pay("OVER-CORRECTED", "200", account="TUK002")  # its entry, and 50 more: too much
        _correct("OVER-CORRECTED", "50")
        pay("CORRECTIONS-CANCEL", "300", account="TUK002")  # +30 - 30: in order
        _correct("CORRECTIONS-CANCEL", "30")
        _correct("CORRECTIONS-CANCEL", "-30")
        pay("ENTRY-NEXT-DAY", "800", account="TUK003")  # in order, its entry on D1
        _replace_entry("ENTRY-NEXT-DAY", business_day=D1)
        for _ in range(2):
            pay("TWICE", "200", account="TUK003")  # in order, delivered twice
        pay("SELF", "300", account="DRV-112003")  # a self-payment: a contribution entry too
    assert Transaction.objects.get(trans_id="TWICE").redeliveries == 1


def _by_rule(statuses: list[PaymentStatus]) -> list[PaymentStatus]:
    return [s for s in statuses if s.problem is not None or s.information is not None]


def test_findings_are_the_rules_whatever_days_the_database_reads() -> None:
    _every_state()
    everything = Transaction.objects.all()
    every_status = payment_statuses(everything)
    expected = _by_rule(every_status)
    assert [(s.trans_id, s.problem and s.problem.type) for s in expected] == [
        ("DIFFERS", "entry_mismatch"),
        ("LOST", "missing_entry"),
        ("HALF-CORRECTED", "entry_mismatch"),
        ("OVER-CORRECTED", "entry_mismatch"),
        ("TWICE", None),
    ]
    payments = Counter(status.driver_pk for status in every_status)
    # The days only tell the database which entries to read first; [D1] and [] read the
    # wrong ones or none, and the answer is the same, only slower.
    for entry_days in (None, [], [D], [D1], [D, D1]):
        assert payment_statuses(everything, only_findings=True, entry_days=entry_days) == expected
        check = payments_check(everything, entry_days=entry_days)
        assert check.findings == expected
        assert check.payments == payments


def test_snapshots_report_each_drivers_findings_as_the_rule_does() -> None:
    _every_state()
    pks = Driver.objects.values_list("pk", flat=True)
    with time_machine.travel(nairobi(2026, 3, 10, 12), tick=False):
        for snapshots in (
            balance_snapshots(),
            balance_snapshots(day=D),
            [balance_snapshots(driver_pks=[pk])[0] for pk in pks],
        ):
            assert len(snapshots) == 3
            for snapshot in snapshots:
                rule = payment_statuses(
                    Transaction.objects.filter(driver_id=snapshot.driver_pk, business_day=D)
                )
                assert snapshot.business_day == D
                assert snapshot.problems == [s.problem for s in rule if s.problem]
                assert snapshot.information == [s.information for s in rule if s.information]
                assert snapshot.transactions_count == len(rule)


def test_each_driver_is_checked_on_its_own_open_day() -> None:
    with time_machine.travel(nairobi(2026, 3, 10), tick=False):
        make_driver(1)
        make_driver(2)
        pay("A1", "1000")  # driver 1: 500 on D, then nothing
        pay("B1", "1000", account="TUK002")
    with time_machine.travel(nairobi(2026, 3, 11), tick=False):
        pay("B2", "600", account="TUK002")  # closes driver 2's D: D1 opens at -2500, +300
        _delete_entry("B2")
        first, second = balance_snapshots()
    assert (first.driver_id, first.business_day, first.day_state) == ("DRV-112001", D, "open")
    assert (first.old_balance, first.calculated_balance, first.problems) == (
        Decimal("500.00"),
        Decimal("500.00"),
        [],
    )
    assert (first.transactions_count, first.entries_count) == (1, 1)
    assert (second.driver_id, second.business_day, second.day_state) == (
        "DRV-112002",
        D1,
        DayState.OPEN,
    )
    assert (second.old_balance, second.calculated_balance, second.opening_balance) == (
        Decimal("-2200.00"),
        Decimal("-2500.00"),
        Decimal("-2500.00"),
    )
    assert [(p.type, p.trans_id) for p in second.problems] == [("missing_entry", "B2")]
    assert (second.transactions_count, second.entries_count) == (1, 1)
