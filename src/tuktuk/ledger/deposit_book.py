"""The deposit book: a driver's deposit balance and the one writer of its entries.

The balance is the last entry's `balance_after`; the database refuses an entry that does not
follow from the previous one (append_only.deposit_chain_operations) or that would take the
balance below zero (a CHECK). Callers hold the driver's row lock, as for the target ledger, so
two movements of one deposit never race; the chain trigger holds even around the application.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

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


def deduction_propose(
    *, driver: Driver, day: dt.date, shortfall: Decimal
) -> DeductionProposal | None:
    """At a missed day's close (the caller holds the driver's lock): propose paying the
    shortfall from the deposit, up to its balance, when the driver allows it. A fleet manager
    approves or rejects it (ledger.deposits.deduction_decide)."""
    allowed = DepositAccount.objects.filter(driver=driver, allow_target_deduction=True).exists()
    if not allowed or shortfall <= 0:
        return None
    balance = deposit_balance(driver_pk=driver.pk)
    if balance <= 0:
        return None
    amount = min(shortfall, balance)
    proposal = DeductionProposal.objects.create(
        driver=driver, business_day=day, shortfall=shortfall, amount=amount
    )
    events.event_record(
        title=events.EventTitle.DEDUCTION_PROPOSED,
        driver=driver,
        message=f"{driver.driver_id} missed {day} by {format_ksh(shortfall)} KSH: "
        f"{format_ksh(amount)} KSH from the deposit waits for a fleet manager",
        data={"proposal": proposal.pk, "amount": str(amount), "shortfall": str(shortfall)},
    )
    return proposal
