"""The deposit book: a driver's deposit balance and the one writer of its entries.

The balance is the last entry's `balance_after`; the database refuses an entry that does not
follow from the previous one (append_only.deposit_chain_operations) or that would take the
balance below zero (a CHECK). Callers hold the driver's row lock, as for the target ledger, so
two movements of one deposit never race; the chain trigger holds even around the application.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import DecimalField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from tuktuk.core import events
from tuktuk.core.errors import InvalidInput
from tuktuk.core.money import ZERO, format_ksh, money
from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import (
    DeductionProposal,
    DepositAccount,
    DepositEntry,
    DepositEntryKind,
    Transaction,
)


def deposit_account_get(*, driver: Driver) -> DepositAccount:
    account, _ = DepositAccount.objects.get_or_create(driver=driver)
    return account


def _last_entry(driver_pk: int) -> tuple[int, Decimal]:
    last = (
        DepositEntry.objects.filter(driver_id=driver_pk)
        .order_by("-seq")
        .values_list("seq", "balance_after")
        .first()
    )
    return (0, ZERO) if last is None else (last[0], money(last[1]))


def deposit_balance(*, driver_pk: int) -> Decimal:
    return _last_entry(driver_pk)[1]


def deposit_entry_add(
    *,
    driver: Driver,
    kind: DepositEntryKind,
    amount: Decimal,
    reference: str,
    actor: str = "",
    transaction: Transaction | None = None,
) -> DepositEntry:
    """Append one movement (signed `amount`) for a driver whose row the caller has locked."""
    seq, balance = _last_entry(driver.pk)
    after = balance + amount
    if after < 0:
        raise InvalidInput(
            f"{driver.driver_id}: {format_ksh(-amount)} KSH is more than the deposit balance "
            f"of {format_ksh(balance)} KSH"
        )
    return DepositEntry.objects.create(
        driver=driver,
        seq=seq + 1,
        kind=kind,
        amount=money(amount),
        balance_after=money(after),
        reference=reference[:255],
        actor=actor,
        transaction=transaction,
    )


@dataclass(frozen=True)
class Shortfall:
    """A missed day: how far the driver fell short of the target."""

    driver: Driver
    amount: Decimal


def _last_entries(driver_pk: str) -> QuerySet[DepositEntry]:
    """A driver's deposit entries, last first, for a subquery: `driver_pk` names the outer
    query's column holding the driver's primary key. The balance is the first one's
    balance_after."""
    return DepositEntry.objects.filter(driver_id=OuterRef(driver_pk)).order_by("-seq")


def deposit_balance_subquery(driver_pk: str = "pk") -> Coalesce:
    """The driver's deposit balance (its last entry's balance_after, or 0), for annotate() on
    a queryset whose `driver_pk` column is the driver's primary key."""
    return Coalesce(
        Subquery(_last_entries(driver_pk).values("balance_after")[:1]),
        Value(ZERO),
        output_field=DecimalField(max_digits=14, decimal_places=2),
    )


def deposit_balances(*, driver_pks: Collection[int]) -> dict[int, Decimal]:
    """Each of these drivers' deposit balance (its last entry's balance_after); a driver with
    no entry is absent. One query."""
    last_seq = _last_entries("driver_id").values("seq")[:1]
    return {
        driver_pk: money(balance)
        for driver_pk, balance in DepositEntry.objects.filter(
            driver_id__any_of=set(driver_pks), seq=Subquery(last_seq)
        ).values_list("driver_id", "balance_after")
    }


def deductions_propose(*, day: dt.date, shortfalls: Sequence[Shortfall]) -> list[DeductionProposal]:
    """At a missed day's close (the caller holds the drivers' locks): for each driver who
    allows it, propose paying the shortfall from the deposit, up to its balance. A fleet
    manager approves or rejects each (ledger.deposits.deduction_decide). A fixed number of
    queries however many drivers missed."""
    owed = {s.driver.pk: s for s in shortfalls if s.amount > 0}
    allowed = DepositAccount.objects.filter(
        driver_id__any_of=set(owed), allow_target_deduction=True
    ).values_list("driver_id", flat=True)
    balances = deposit_balances(driver_pks=list(allowed))
    proposals = DeductionProposal.objects.bulk_create(
        [
            DeductionProposal(
                driver=owed[driver_pk].driver,
                business_day=day,
                shortfall=owed[driver_pk].amount,
                amount=min(owed[driver_pk].amount, balance),
            )
            for driver_pk, balance in sorted(balances.items())
            if balance > 0
        ]
    )
    events.events_record(
        drafts=[
            events.EventDraft(
                title=events.EventTitle.DEDUCTION_PROPOSED,
                driver=proposal.driver,
                message=f"{proposal.driver.driver_id} missed {day} by "
                f"{format_ksh(proposal.shortfall)} KSH: {format_ksh(proposal.amount)} KSH "
                "from the deposit waits for a fleet manager",
                data={
                    "proposal": proposal.pk,
                    "amount": str(proposal.amount),
                    "shortfall": str(proposal.shortfall),
                },
            )
            for proposal in proposals
        ]
    )
    return proposals
