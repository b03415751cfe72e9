"""Operator tools on a driver's deposit, and the target deductions a fleet manager decides.

Every movement locks the driver row (the same lock as the posting), re-checks, writes an
append-only deposit entry through `deposit_book`, and records an event naming the actor. Money
moved from the deposit to the target balance lands in the driver's open business day as a
`deposit` ledger entry, which reduces the debt carried over by exactly that amount.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.db import atomic_with_retry
from tuktuk.core.errors import Conflict, InvalidInput, NotFound, require_reason
from tuktuk.core.money import ZERO, format_ksh, operator_amount
from tuktuk.fleet.balance import driver_balance_credit
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.fleet.selectors import driver_get
from tuktuk.ledger.day_close import current_business_day, driver_roll_to_day
from tuktuk.ledger.deposit_book import deposit_account_get, deposit_balance, deposit_entry_add
from tuktuk.ledger.models import (
    Decision,
    DeductionProposal,
    DepositAccount,
    DepositEntry,
    DepositEntryKind,
    EntryKind,
    LedgerEntry,
)

RETRIES = 5

# What an operator may record as money in and as money out.
OPERATOR_CREDITS = {
    "initial": DepositEntryKind.INITIAL,
    "top-up": DepositEntryKind.TOP_UP,
    "adjustment": DepositEntryKind.ADJUSTMENT,
}
OPERATOR_DEBITS = {
    "damage": DepositEntryKind.DAMAGE_DEDUCTION,
    "adjustment": DepositEntryKind.ADJUSTMENT,
}


def driver_locked(driver_pk: int) -> Driver:
    """The driver row, locked until the caller's transaction ends."""
    return Driver.objects.select_for_update().get(pk=driver_pk)


def _kind(kinds: dict[str, DepositEntryKind], raw: str, what: str) -> DepositEntryKind:
    key = str(raw).strip().lower().replace("_", "-").replace(" ", "-")
    aliases = {"top-up": "top-up", "topup": "top-up", "initial-deposit": "initial"}
    key = aliases.get(key, key)
    if key.endswith("-deduction"):
        key = key.removesuffix("-deduction")
    if key not in kinds:
        raise InvalidInput(f"{what} type {raw!r} is not one of: {', '.join(kinds)}")
    return kinds[key]


def _movement(
    *, driver_id: str, kind: DepositEntryKind, signed: Decimal, reason: str, actor: str
) -> DepositEntry:
    driver = driver_get(ref=driver_id)
    deposit_account_get(driver=driver)

    def move() -> DepositEntry:
        locked = driver_locked(driver.pk)
        return deposit_entry_add(
            driver=locked, kind=kind, amount=signed, reference=reason, actor=actor
        )

    entry = atomic_with_retry(move, attempts=RETRIES, label="deposit_movement")
    events.event_record(
        title=events.EventTitle.DEPOSIT_RECORDED
        if signed > 0
        else events.EventTitle.DEPOSIT_DEDUCTED,
        driver=driver,
        actor=actor,
        message=f"{driver.driver_id}: {kind} {format_ksh(signed)} KSH, deposit now "
        f"{format_ksh(entry.balance_after)} KSH: {reason}",
        data={"entry": entry.pk, "kind": str(kind), "amount": str(signed)},
    )
    return entry


def deposit_add(
    *, driver_id: str, amount: Decimal | str, kind: str = "top-up", reason: str, actor: str
) -> DepositEntry:
    """Money in: an initial deposit or a top-up taken in cash, or a positive adjustment."""
    entry_kind = _kind(OPERATOR_CREDITS, kind, "deposit")
    value = operator_amount(amount)
    return _movement(
        driver_id=driver_id,
        kind=entry_kind,
        signed=value,
        reason=require_reason(reason),
        actor=actor,
    )


def deposit_deduct(
    *, driver_id: str, amount: Decimal | str, kind: str = "damage", reason: str, actor: str
) -> DepositEntry:
    """Money out: a damage deduction or a negative adjustment, never below zero."""
    entry_kind = _kind(OPERATOR_DEBITS, kind, "deduction")
    value = operator_amount(amount)
    return _movement(
        driver_id=driver_id,
        kind=entry_kind,
        signed=-value,
        reason=require_reason(reason),
        actor=actor,
    )


def _is_zero(raw: str) -> bool:
    try:
        return Decimal(raw) == 0
    except ArithmeticError:
        return False  # not a number: operator_amount says so


def deposit_settings_set(
    *,
    driver_id: str,
    actor: str,
    required: bool | None = None,
    initial_amount: Decimal | str | None = None,
    allow_target_deduction: bool | None = None,
) -> DepositAccount:
    driver = driver_get(ref=driver_id)
    account = deposit_account_get(driver=driver)
    changes: dict[str, object] = {}
    if required is not None:
        changes["required"] = required
    if initial_amount is not None:
        raw = str(initial_amount).strip()
        changes["initial_amount"] = ZERO if _is_zero(raw) else operator_amount(raw)
    if allow_target_deduction is not None:
        changes["allow_target_deduction"] = allow_target_deduction
    if not changes:
        raise InvalidInput("nothing to change")
    DepositAccount.objects.filter(pk=account.pk).update(**changes, updated_at=timezone.now())
    account.refresh_from_db()
    events.event_record(
        title=events.EventTitle.DEPOSIT_SETTINGS_CHANGED,
        driver=driver,
        actor=actor,
        message=f"{driver.driver_id} deposit settings: "
        + ", ".join(f"{k}={v}" for k, v in changes.items()),
        data={k: str(v) for k, v in changes.items()},
    )
    return account


def deposit_to_target(
    *, driver: Driver, fleet: FleetSettings, amount: Decimal, reference: str, actor: str
) -> DepositEntry:
    """Move `amount` from the deposit to the target balance of the driver's open day (the
    caller holds the lock): a Target Deduction entry and its `deposit` ledger entry."""
    if driver.balance_day is None:
        driver_roll_to_day(driver=driver, day=current_business_day(fleet), fleet=fleet)
    assert driver.balance_day is not None  # set by the roll
    entry = deposit_entry_add(
        driver=driver,
        kind=DepositEntryKind.TARGET_DEDUCTION,
        amount=-amount,
        reference=reference,
        actor=actor,
    )
    LedgerEntry.objects.create(
        driver=driver,
        business_day=driver.balance_day,
        kind=EntryKind.DEPOSIT,
        amount=amount,
        note=reference[:255],
    )
    driver_balance_credit(driver_pk=driver.pk, target=driver.effective_target(fleet), amount=amount)
    return entry


def deduction_decide(
    *, proposal_id: int, approve: bool, actor: str, reason: str = ""
) -> DeductionProposal:
    """Approve (move the amount, up to what the deposit holds now) or reject a proposal,
    exactly once: the state changes from proposed under the driver's lock."""
    proposal = DeductionProposal.objects.filter(pk=proposal_id).first()
    if proposal is None:
        raise NotFound(f"no deduction proposal {proposal_id}")
    if not approve:
        reason = require_reason(reason)
    fleet = FleetSettings.load()

    def decide() -> DeductionProposal:
        driver = driver_locked(proposal.driver_id)
        current = DeductionProposal.objects.get(pk=proposal_id)
        if current.state != Decision.PROPOSED:
            raise Conflict(f"deduction proposal {proposal_id} is already {current.state}")
        amount = ZERO
        if approve:
            amount = min(current.amount, deposit_balance(driver_pk=driver.pk))
            if amount <= 0:
                raise Conflict(f"{driver.driver_id}'s deposit is empty; reject the proposal")
            deposit_to_target(
                driver=driver,
                fleet=fleet,
                amount=amount,
                reference=f"missed target of {current.business_day}"
                + (f": {reason}" if reason else ""),
                actor=actor,
            )
        DeductionProposal.objects.filter(pk=proposal_id, state=Decision.PROPOSED).update(
            state=Decision.APPROVED if approve else Decision.REJECTED,
            approved_amount=amount,
            decided_by=actor,
            decided_at=timezone.now(),
            reason=reason,
        )
        current.refresh_from_db()
        return current

    decided = atomic_with_retry(decide, attempts=RETRIES, label="deduction_decide")
    events.event_record(
        title=events.EventTitle.DEDUCTION_APPROVED
        if approve
        else events.EventTitle.DEDUCTION_REJECTED,
        driver=decided.driver,
        actor=actor,
        message=f"{decided.driver.driver_id}: deduction for {decided.business_day} "
        + (f"approved, {format_ksh(decided.approved_amount)} KSH moved" if approve else "rejected")
        + (f": {reason}" if reason else ""),
        data={"proposal": decided.pk, "amount": str(decided.approved_amount)},
    )
    return decided


def deduction_proposals(*, state: str | None = Decision.PROPOSED) -> QuerySet[DeductionProposal]:
    rows = DeductionProposal.objects.select_related("driver")
    return rows.filter(state=state) if state else rows


@dataclass(frozen=True)
class DepositView:
    driver_id: str
    name: str
    status: str
    required: bool
    initial_amount: Decimal
    allow_target_deduction: bool
    balance: Decimal
    entries: list[DepositEntry]


def deposit_show(*, driver_id: str) -> DepositView:
    driver = driver_get(ref=driver_id)
    account = DepositAccount.objects.filter(driver=driver).first()
    entries = list(DepositEntry.objects.filter(driver=driver).order_by("seq"))
    return DepositView(
        driver_id=driver.driver_id,
        name=driver.name,
        status=driver.status,
        required=bool(account and account.required),
        initial_amount=account.initial_amount if account else ZERO,
        allow_target_deduction=bool(account and account.allow_target_deduction),
        balance=entries[-1].balance_after if entries else ZERO,
        entries=entries,
    )
