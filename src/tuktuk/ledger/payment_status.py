"""A payment's standing in the ledger: one rule for reconciliation, statements, the balance fix
and the admin's transaction verification, so they always agree.

A completed payment's contribution as the ledger has it is its own contribution entry plus any
corrections posted for it later (a closed day is corrected in the open day, never rewritten).
It is a problem when that differs from the payment's target contribution. A TransID delivered
again after it posted is information, not a problem: the unique TransID credited nothing.

Checking a whole fleet's day at once (reconciliation, `payments_check`), the database first
drops the payments plainly in order, in one pass over the day's payments and entries; the
rule's figures are then read, and the rule applied, for the few left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from django.db.models import (
    Count,
    F,
    FilteredRelation,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Abs, Coalesce

from tuktuk.core.money import ZERO, MoneyField, money
from tuktuk.ledger.models import LedgerEntry, Transaction, TransactionStatus, TransactionType

_ZERO = Value(ZERO, output_field=MoneyField())


class FindingKind(StrEnum):
    MISSING_ENTRY = "missing_entry"
    ENTRY_MISMATCH = "entry_mismatch"
    DUPLICATE_DELIVERY = "duplicate_trans_id"


@dataclass(frozen=True)
class Finding:
    """Something reconciliation reports about one payment."""

    type: FindingKind
    trans_id: str
    detail: str
    # Money problems need a fix; information (a TransID delivered twice) does not.
    needs_fix: bool


@dataclass(frozen=True)
class PaymentStatus:
    driver_pk: int
    trans_id: str
    business_day: dt.date | None
    target_contribution: Decimal
    entry_amount: Decimal | None  # its own contribution entry; None when there is none
    corrected: Decimal  # corrections posted for it since
    redeliveries: int

    @property
    def in_ledger(self) -> Decimal:
        return (self.entry_amount or ZERO) + self.corrected

    @property
    def missing(self) -> Decimal:
        """What the ledger still lacks for this payment (negative: it has too much)."""
        return self.target_contribution - self.in_ledger

    @property
    def problem(self) -> Finding | None:
        if self.missing == 0:
            return None
        if self.entry_amount is None:
            return Finding(
                FindingKind.MISSING_ENTRY,
                self.trans_id,
                f"completed payment has no contribution entry ({self.target_contribution} KSH)",
                needs_fix=True,
            )
        return Finding(
            FindingKind.ENTRY_MISMATCH,
            self.trans_id,
            f"entry {self.in_ledger} KSH differs from contribution {self.target_contribution} KSH",
            needs_fix=True,
        )

    @property
    def information(self) -> Finding | None:
        if not self.redeliveries:
            return None
        return Finding(
            FindingKind.DUPLICATE_DELIVERY,
            self.trans_id,
            f"delivered {self.redeliveries + 1} times, posted 1 time",
            needs_fix=False,
        )


# The credits that carry a contribution entry: fares and the target part of self-payments.
CONTRIBUTING_TYPES = [TransactionType.PAYMENT, TransactionType.SELF_PAYMENT]


def completed_payments(transactions: QuerySet[Transaction]) -> QuerySet[Transaction]:
    return transactions.filter(
        status=TransactionStatus.COMPLETED, transaction_type__in=CONTRIBUTING_TYPES
    )


# Rows per query when a list of drivers or payments is passed to the database: well under the
# bound parameters every supported database accepts in one statement.
_CHUNK = 1000


def _chunks(items: list[int]) -> list[list[int]]:
    return [items[start : start + _CHUNK] for start in range(0, len(items), _CHUNK)]


def _statuses(payments: QuerySet[Transaction], *, only_findings: bool) -> list[PaymentStatus]:
    """The rule's figures for `payments`, ordered by driver and TransID: each one's own entry
    and the sum of its corrections, looked up per payment through the unique transaction index
    and the corrects index."""
    own_entry = LedgerEntry.objects.filter(transaction=OuterRef("pk")).order_by().values("amount")
    corrections = (
        LedgerEntry.objects.filter(corrects=OuterRef("pk"))
        .order_by()
        .values("corrects")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    rows = payments.annotate(
        entry_amount=Subquery(own_entry, output_field=MoneyField()),
        corrected=Subquery(corrections, output_field=MoneyField()),
    )
    if only_findings:
        in_ledger = Coalesce(F("entry_amount"), _ZERO) + Coalesce(F("corrected"), _ZERO)
        # Within half a cent: SQLite keeps decimals as binary floats.
        rows = rows.annotate(gap=Abs(F("target_contribution") - in_ledger)).filter(
            Q(gap__gt=Decimal("0.005")) | Q(redeliveries__gt=0)
        )
    statuses = []
    for row in rows.order_by("driver_id", "trans_id").values_list(
        "driver_id",
        "trans_id",
        "business_day",
        "target_contribution",
        "entry_amount",
        "corrected",
        "redeliveries",
    ):
        driver_pk, trans_id, business_day, contribution, entry_amount, corrected, redeliveries = row
        statuses.append(
            PaymentStatus(
                driver_pk=driver_pk,
                trans_id=trans_id,
                business_day=business_day,
                target_contribution=money(contribution),
                entry_amount=None if entry_amount is None else money(entry_amount),
                corrected=money(corrected or ZERO),
                redeliveries=redeliveries,
            )
        )
    return statuses


def _maybe_findings(
    payments: QuerySet[Transaction], *, entry_days: Collection[dt.date] | None
) -> tuple[QuerySet[Transaction], Q]:
    """`payments` annotated for the condition returned with them, which holds for all but the
    payments plainly in order: delivered once, never corrected, with their own entry equal to
    their contribution. A superset on purpose, read in one pass (a join, no per-payment
    look-up), so that the rule's look-ups run for the few it keeps alone.

    `entry_days` limits the entries read to those days (through the (business_day, driver)
    index of migration 0010: the day's rows, not the ledger's whole history); a payment whose
    entry is on another day simply stays in, and the rule decides on it as on any other.
    """
    own_entry = "entry"
    if entry_days:
        payments = payments.annotate(
            day_entry=FilteredRelation("entry", condition=Q(entry__business_day__in=entry_days))
        )
        own_entry = "day_entry"
    corrected = LedgerEntry.objects.filter(corrects__isnull=False).values("corrects")
    maybe = (
        Q(**{f"{own_entry}__transaction__isnull": True})
        # Within half a cent: SQLite keeps decimals as binary floats.
        | Q(entry_gap__gt=Decimal("0.005"))
        | Q(redeliveries__gt=0)
        # Corrections are few: the database reads their list once, not once per payment.
        | Q(pk__in=corrected)
    )
    gap = Abs(F("target_contribution") - F(f"{own_entry}__amount"))
    return payments.annotate(entry_gap=gap), maybe


def payment_statuses(
    transactions: QuerySet[Transaction],
    *,
    only_findings: bool = False,
    entry_days: Collection[dt.date] | None = None,
) -> list[PaymentStatus]:
    """The standing of every completed payment among `transactions`, ordered by driver and
    TransID.

    `only_findings` keeps the payments that are not plainly in order (their ledger amount
    differs from their contribution, or they were delivered more than once): the database
    picks the few that may be (one query), then the rule's figures are read for them alone
    (one more, none when there are none); the rule itself stays the properties above.
    `entry_days`, the business days of `transactions` when the caller knows them, lets the
    database read only those days' entries to tell which payments are plainly in order.
    """
    payments = completed_payments(transactions)
    if not only_findings:
        return _statuses(payments, only_findings=False)
    # Two queries, not one: with the rule's look-ups in the query that picks the few,
    # PostgreSQL ran them for every payment of the day before the pick (they only need the
    # payment's row, so it pushes them down to the scan), and their estimated cost switched
    # its JIT compiler on: over a second for 10,000 drivers.
    candidates, maybe = _maybe_findings(payments, entry_days=entry_days)
    pks = list(
        candidates.filter(maybe).order_by("driver_id", "trans_id").values_list("pk", flat=True)
    )
    statuses = []
    for chunk in _chunks(pks):
        statuses += _statuses(Transaction.objects.filter(pk__in=chunk), only_findings=True)
    return statuses


@dataclass(frozen=True)
class PaymentsCheck:
    payments: dict[int, int]  # completed payments per driver pk (drivers without: absent)
    findings: list[PaymentStatus]  # as payment_statuses(only_findings=True) has them


def payments_check(
    transactions: QuerySet[Transaction], *, entry_days: Collection[dt.date] | None = None
) -> PaymentsCheck:
    """Every driver's number of completed payments among `transactions`, and the findings
    among them, reading the payments once whatever the number of drivers (then once more,
    for the drivers with payments not plainly in order alone, if any).

    One pass counts both each driver's payments and those not plainly in order, so the
    rule's look-ups run for the drivers with some; `entry_days` as for payment_statuses.
    """
    payments, maybe = _maybe_findings(completed_payments(transactions), entry_days=entry_days)
    counts: dict[int, int] = {}
    suspect: list[int] = []
    for driver_pk, n_payments, n_maybe in (
        payments.values("driver_id")
        .annotate(n=Count("pk"), maybe=Count("pk", filter=maybe))
        .order_by()
        .values_list("driver_id", "n", "maybe")
    ):
        counts[driver_pk] = n_payments
        if n_maybe:
            suspect.append(driver_pk)
    findings: list[PaymentStatus] = []
    for chunk in _chunks(sorted(suspect)):
        findings += payment_statuses(
            transactions.filter(driver__in=chunk), only_findings=True, entry_days=entry_days
        )
    return PaymentsCheck(payments=counts, findings=findings)
