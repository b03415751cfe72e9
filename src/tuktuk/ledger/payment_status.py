"""A payment's standing in the ledger: one rule for reconciliation, statements, the balance fix
and the admin's transaction verification, so they always agree.

A completed payment's contribution as the ledger has it is its own contribution entry plus any
corrections posted for it later (a closed day is corrected in the open day, never rewritten).
It is a problem when that differs from the payment's target contribution. A TransID delivered
again after it posted is information, not a problem: the unique TransID credited nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from django.db.models import F, Q, QuerySet, Sum, Value
from django.db.models.functions import Abs, Coalesce

from tuktuk.core.money import ZERO, MoneyField, money
from tuktuk.ledger.models import Transaction, TransactionStatus, TransactionType

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


def payment_statuses(
    transactions: QuerySet[Transaction], *, only_findings: bool = False
) -> Iterator[PaymentStatus]:
    """The standing of every completed payment among `transactions`, in one query.

    `only_findings` lets the database drop the payments that are plainly in order (their
    ledger amount equals their contribution and they were delivered once), so a check over
    10,000 drivers reads the few that matter; the rule itself stays the properties above.
    """
    rows = (
        completed_payments(transactions)
        .annotate(corrected=Sum("correction_entries__amount"))
        .order_by()  # no sort: 10,000 drivers' payments are grouped, not listed
        .values(
            "driver_id",
            "trans_id",
            "business_day",
            "target_contribution",
            "entry__amount",
            "corrected",
            "redeliveries",
        )
    )
    if only_findings:
        in_ledger = Coalesce(F("entry__amount"), _ZERO) + Coalesce(F("corrected"), _ZERO)
        # Within half a cent: SQLite keeps decimals as binary floats.
        rows = rows.annotate(gap=Abs(F("target_contribution") - in_ledger)).filter(
            Q(gap__gt=Decimal("0.005")) | Q(redeliveries__gt=0)
        )
    for row in rows.iterator():
        yield PaymentStatus(
            driver_pk=row["driver_id"],
            trans_id=row["trans_id"],
            business_day=row["business_day"],
            target_contribution=money(row["target_contribution"]),
            entry_amount=None if row["entry__amount"] is None else money(row["entry__amount"]),
            corrected=money(row["corrected"] or ZERO),
            redeliveries=row["redeliveries"],
        )
