"""Reconciliation: a driver's cached balance checked against the ledger, and fixed.

The legacy formula summed today's contributions since 06:00 and so ignored the debt carried
over at the day close and payments between midnight and 06:00. Here the calculated balance is
the sum of the driver's ledger entries for the business day, opening carry-over included.

These services return dataclasses; the legacy JSON (`reconcile_driver_balance` & co.) is built
from them in one place, `tuktuk.backoffice.legacy`.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from tuktuk.core import events
from tuktuk.core.db import atomic_with_retry
from tuktuk.core.errors import InvalidInput
from tuktuk.core.money import ZERO, format_ksh, money
from tuktuk.fleet.balance import driver_balance_set
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.day_close import current_business_day, driver_roll_to_day, ledger_sum
from tuktuk.ledger.models import BalanceCorrection, EntryKind, LedgerEntry, Transaction
from tuktuk.ledger.payment_status import payment_statuses
from tuktuk.ledger.selectors import BalanceSnapshot, balance_snapshots

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BalanceFix:
    """What a fix did to one driver's open day (nothing, when nothing needed fixing)."""

    before: BalanceSnapshot  # the check the fix started from (the day asked about)
    business_day: dt.date  # the open day the fix wrote to
    old_balance: Decimal
    new_balance: Decimal
    entries_posted: int

    @property
    def adjustment(self) -> Decimal:
        return self.old_balance - self.new_balance

    @property
    def fixed(self) -> bool:
        return self.adjustment != 0 or self.entries_posted > 0


@dataclass(frozen=True)
class DriverReconciliation:
    """One driver whose balance needs a fix, in a mass reconciliation."""

    snapshot: BalanceSnapshot
    needs_review: bool  # above the fleet's review threshold: never fixed in a mass run
    fix: BalanceFix | None = None
    error: str | None = None

    @property
    def fixed(self) -> bool:
        return self.fix is not None and self.fix.fixed


@dataclass(frozen=True)
class MassReconciliation:
    snapshots: list[BalanceSnapshot]  # every driver checked
    rows: list[DriverReconciliation]  # those that needed a fix
    auto_fix: bool
    review_threshold: Decimal

    @property
    def total_discrepancy_amount(self) -> Decimal:
        return sum((abs(row.snapshot.discrepancy) for row in self.rows), ZERO)

    @property
    def drivers_fixed(self) -> int:
        return sum(1 for row in self.rows if row.fixed)

    @property
    def drivers_needing_review(self) -> int:
        return sum(1 for row in self.rows if row.needs_review)

    @property
    def remaining(self) -> bool:
        return any(not row.fixed for row in self.rows)


def driver_balance_check(*, driver: Driver, day: dt.date | None = None) -> BalanceSnapshot:
    """Check one driver's balance against the ledger on `day` (default: its open day).

    A read: no event here, so polling a driver's reconciliation cannot flood the log. The
    batch check and every fix record what they found."""
    (snapshot,) = balance_snapshots(driver_pks=[driver.pk], day=day)
    return snapshot


def _post_missing_contributions(
    *, driver: Driver, day: dt.date, open_day: dt.date, reason: str
) -> int:
    """Give every completed payment of `day` its contribution in the ledger. A payment of the
    open day gets its own entry; one of a closed day gets a correction in the open day (closed
    days are never rewritten), as does an entry whose amount differs from its transaction."""
    posted = 0
    payments = Transaction.objects.filter(driver=driver, business_day=day)
    by_trans_id = {tx.trans_id: tx for tx in payments}
    for status in payment_statuses(payments):
        if status.missing == 0:
            continue
        tx = by_trans_id[status.trans_id]
        if status.entry_amount is None and day == open_day and not status.corrected:
            LedgerEntry.objects.create(
                driver=driver,
                business_day=open_day,
                kind=EntryKind.CONTRIBUTION,
                amount=status.target_contribution,
                transaction=tx,
                note="missing entry posted by a balance fix",
            )
        else:
            what = "missing contribution" if status.entry_amount is None else "entry differed"
            LedgerEntry.objects.create(
                driver=driver,
                business_day=open_day,
                kind=EntryKind.CORRECTION,
                amount=status.missing,
                corrects=tx,
                note=f"{what} of {tx.trans_id} on {day}: {reason}"[:255],
            )
        posted += 1
    return posted


def driver_balance_fix(
    *, driver: Driver, day: dt.date | None = None, reason: str, actor: str
) -> BalanceFix:
    """Make the driver's open-day balance equal its ledger, posting what payments of `day`
    (default: the open day) lack. Audited: a BalanceCorrection row and events with the actor."""
    if not reason.strip():
        raise InvalidInput("a reason is required to fix a balance")
    before = driver_balance_check(driver=driver, day=day)
    if before.needs_fix:
        events.event_record(
            title=events.EventTitle.DISCREPANCY_DETECTED,
            level=events.EventLevel.WARNING,
            driver=driver,
            actor=actor,
            message=f"{driver.driver_id} on {before.business_day}: cached "
            f"{before.old_balance}, ledger {before.calculated_balance}, "
            f"{len(before.problems)} problem(s)",
            data={
                "business_day": before.business_day.isoformat(),
                "old_balance": str(before.old_balance),
                "calculated_balance": str(before.calculated_balance),
                "discrepancy": str(before.discrepancy),
                "problems": [problem.trans_id for problem in before.problems],
            },
        )

    def fix() -> BalanceFix:
        fleet = FleetSettings.load()
        locked = Driver.objects.select_for_update().get(pk=driver.pk)
        driver_roll_to_day(driver=locked, day=current_business_day(fleet), fleet=fleet)
        open_day = locked.balance_day
        assert open_day is not None
        if day is not None and day > open_day:
            raise InvalidInput(f"{day} is not a business day yet; the open day is {open_day}")
        posted = _post_missing_contributions(
            driver=locked, day=day or open_day, open_day=open_day, reason=reason
        )
        old = money(locked.current_balance)
        new = ledger_sum(driver_id=locked.pk, business_day=open_day)
        if old != new:
            BalanceCorrection.objects.create(
                driver=locked,
                business_day=open_day,
                old_balance=old,
                new_balance=new,
                adjustment=old - new,
                reason=reason,
                actor=actor,
            )
            driver_balance_set(
                driver_pk=locked.pk, target=locked.effective_target(fleet), balance=new
            )
        return BalanceFix(
            before=before,
            business_day=open_day,
            old_balance=old,
            new_balance=new,
            entries_posted=posted,
        )

    done = atomic_with_retry(
        fix, attempts=settings.POSTING_MAX_ATTEMPTS, label="driver_balance_fix"
    )
    if done.fixed:
        events.event_record(
            title=events.EventTitle.BALANCE_FIXED,
            driver=driver,
            actor=actor,
            message=f"{format_ksh(done.old_balance)} → {format_ksh(done.new_balance)} KSH, "
            f"{done.entries_posted} ledger entry(ies) posted: {reason}",
            data={
                "old_balance": str(done.old_balance),
                "new_balance": str(done.new_balance),
                "adjustment": str(done.adjustment),
                "entries_posted": done.entries_posted,
                "reason": reason,
                "business_day": done.business_day.isoformat(),
            },
        )
    return done


def drivers_balance_reconcile(
    *, day: dt.date | None = None, auto_fix: bool = False, reason: str = "", actor: str = ""
) -> MassReconciliation:
    """Check every active driver; with auto_fix, fix those under the review threshold, each in
    its own transaction (a failure is reported for that driver, the others are still fixed)."""
    if auto_fix and not reason.strip():
        raise InvalidInput("a reason is required to fix balances")
    fleet = FleetSettings.load()
    snapshots = balance_snapshots(day=day)
    threshold = fleet.discrepancy_review_threshold
    rows: list[DriverReconciliation] = []
    for snapshot in (s for s in snapshots if s.needs_fix):
        needs_review = abs(snapshot.discrepancy) > threshold
        fix: BalanceFix | None = None
        error: str | None = None
        if auto_fix and not needs_review and snapshot.fixable:
            try:
                fix = driver_balance_fix(
                    driver=Driver.objects.get(pk=snapshot.driver_pk),
                    day=day,
                    reason=reason,
                    actor=actor,
                )
            except Exception as exc:
                logger.exception("auto-fix failed", extra={"driver": snapshot.driver_id})
                error = f"{type(exc).__name__}: {exc}"
        rows.append(DriverReconciliation(snapshot, needs_review, fix, error))
    result = MassReconciliation(snapshots, rows, auto_fix, threshold)
    if rows:
        events.event_record(
            title=events.EventTitle.DISCREPANCY_DETECTED,
            level=events.EventLevel.WARNING,
            message=f"{len(rows)} of {len(snapshots)} drivers with discrepancies, "
            f"{format_ksh(result.total_discrepancy_amount)} KSH in total",
            data={
                "drivers": [row.snapshot.driver_id for row in rows],
                "total": str(result.total_discrepancy_amount),
            },
        )
    return result
