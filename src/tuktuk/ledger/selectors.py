"""Reads for reconciliation: each driver's cached balance against its ledger, in a handful of
queries however many drivers there are (the single-driver check uses the same path), reading
only the ledger rows of the business day(s) checked, not the ledger's whole history.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from django.db.models import Count, F, Q, Sum

from tuktuk.core.money import ZERO, money
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.day_close import current_business_day
from tuktuk.ledger.models import DayClose, LedgerEntry, Transaction
from tuktuk.ledger.payment_status import Finding, payments_check


class DayState(StrEnum):
    OPEN = "open"  # the day the cached balance belongs to
    CLOSED = "closed"  # compared with the cached balance recorded at its close
    NOT_RECORDED = "not recorded"  # no balance was ever kept for the driver on that day
    PENDING = "pending"  # after the driver's open day: not closed yet, so no entries yet


@dataclass(frozen=True)
class BalanceSnapshot:
    driver_pk: int
    driver_id: str
    name: str
    business_day: dt.date
    day_state: DayState
    old_balance: Decimal
    calculated_balance: Decimal
    transactions_count: int = 0
    entries_count: int = 0
    opening_balance: Decimal = ZERO
    problems: list[Finding] = field(default_factory=list)  # money problems: need a fix
    information: list[Finding] = field(default_factory=list)  # e.g. harmless redeliveries

    @property
    def discrepancy(self) -> Decimal:
        return self.old_balance - self.calculated_balance

    @property
    def needs_fix(self) -> bool:
        """The one rule: a balance needs a fix when it differs from its ledger or a payment's
        contribution is missing or differs."""
        return self.discrepancy != 0 or bool(self.problems)

    @property
    def fixable(self) -> bool:
        """A fix can act: the open day's balance is rewritten; a closed day only gets
        corrections (in the open day) for its payments' missing or differing entries."""
        return self.needs_fix and (self.day_state == DayState.OPEN or bool(self.problems))


def _scope(*, driver_pks: list[int] | None, prefix: str = "") -> Q:
    """Active drivers, or the given ones."""
    if driver_pks is not None:
        return Q(**{f"{prefix}pk__in": driver_pks})
    return Q(**{f"{prefix}is_active": True})


def _day_filter(day: dt.date | None, days: list[dt.date]) -> Q:
    """Entries/transactions of the given day, or of each driver's own open day.

    `days` (every day asked about: usually one) repeats the second case as a plain list, so
    the database reads those days' rows through the (business_day, driver) index of migration
    0010 instead of every row the ledger ever kept to compare each with its driver's day.
    """
    if day is not None:
        return Q(business_day=day)
    return Q(business_day__in=days) & Q(business_day=F("driver__balance_day"))


def balance_snapshots(
    *, driver_pks: list[int] | None = None, day: dt.date | None = None
) -> list[BalanceSnapshot]:
    """Cached vs ledger balance for active drivers (or the given ones) on `day` (default: each
    driver's open day). Four queries (five for a given day) whatever the number of drivers and
    entries, each reading only the rows of the day(s) asked about; two more when some payments
    may be findings (a few more when they are over a thousand: payment_status.payments_check)."""
    fleet = FleetSettings.load()
    today = current_business_day(fleet)
    rows = list(
        Driver.objects.filter(_scope(driver_pks=driver_pks))
        .order_by("driver_id")
        .values_list("pk", "driver_id", "name", "current_balance", "balance_day")
    )
    # A driver without a balance day has no entries of "its" day (as with `= NULL` in SQL).
    days = [day] if day is not None else sorted({row[4] for row in rows if row[4] is not None})
    scope = _scope(driver_pks=driver_pks, prefix="driver__") & _day_filter(day, days)

    entries: dict[int, tuple[Decimal, int, Decimal]] = {}
    for driver_pk, total, n_entries, opening in (
        LedgerEntry.objects.filter(scope)
        .values("driver_id")
        .annotate(
            total=Sum("amount"),
            n=Count("*"),
            opening=Sum("amount", filter=Q(kind="opening")),
        )
        .order_by()
        .values_list("driver_id", "total", "n", "opening")
    ):
        entries[driver_pk] = (money(total or ZERO), n_entries, money(opening or ZERO))

    check = payments_check(Transaction.objects.filter(scope), entry_days=days)
    problems: dict[int, list[Finding]] = defaultdict(list)
    information: dict[int, list[Finding]] = defaultdict(list)
    for status in check.findings:
        if (problem := status.problem) is not None:
            problems[status.driver_pk].append(problem)
        if (info := status.information) is not None:
            information[status.driver_pk].append(info)

    closes: dict[int, Decimal] = {}
    if day is not None:
        closes = dict(
            DayClose.objects.filter(
                _scope(driver_pks=driver_pks, prefix="driver__"), business_day=day
            ).values_list("driver_id", "cached_balance")
        )

    no_entries = (ZERO, 0, ZERO)
    snapshots = []
    for driver_pk, driver_id, name, current_balance, balance_day in rows:
        open_day = balance_day or today
        the_day = day or open_day
        total, n_entries, opening = entries.get(driver_pk, no_entries)
        if the_day == open_day:
            state, old = DayState.OPEN, money(current_balance)
        elif driver_pk in closes:
            state, old = DayState.CLOSED, money(closes[driver_pk])
        else:
            state, old = DayState.NOT_RECORDED, total
        snapshots.append(
            BalanceSnapshot(
                driver_pk=driver_pk,
                driver_id=driver_id,
                name=name,
                business_day=the_day,
                day_state=state,
                old_balance=old,
                calculated_balance=total,
                transactions_count=check.payments.get(driver_pk, 0),
                entries_count=n_entries,
                opening_balance=opening,
                problems=problems.get(driver_pk, []),
                information=information.get(driver_pk, []),
            )
        )
    return snapshots
