"""Reads for reconciliation: each driver's cached balance against its ledger, in a constant
number of queries however many drivers there are (the single-driver check uses the same path).
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
from tuktuk.ledger.payment_status import Finding, completed_payments, payment_statuses


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


def _day_filter(day: dt.date | None, prefix: str = "") -> Q:
    """Entries/transactions of the given day, or of each driver's own open day."""
    if day is not None:
        return Q(**{f"{prefix}business_day": day})
    return Q(**{f"{prefix}business_day": F(f"{prefix}driver__balance_day")})


def balance_snapshots(
    *, driver_pks: list[int] | None = None, day: dt.date | None = None
) -> list[BalanceSnapshot]:
    """Cached vs ledger balance for active drivers (or the given ones) on `day` (default: each
    driver's open day). Five queries whatever the number of drivers and entries."""
    fleet = FleetSettings.load()
    today = current_business_day(fleet)
    drivers = (
        Driver.objects.filter(pk__in=driver_pks)
        if driver_pks is not None
        else Driver.objects.filter(is_active=True)
    )
    rows = list(
        drivers.order_by("driver_id").values(
            "pk", "driver_id", "name", "current_balance", "balance_day"
        )
    )
    scope = Q(driver__in=drivers)

    entries: dict[int, tuple[Decimal, int, Decimal]] = defaultdict(lambda: (ZERO, 0, ZERO))
    for sums in (
        LedgerEntry.objects.filter(scope & _day_filter(day))
        .values("driver_id")
        .annotate(
            total=Sum("amount"),
            n=Count("id"),
            opening=Sum("amount", filter=Q(kind="opening")),
        )
        .order_by()
    ):
        entries[sums["driver_id"]] = (
            money(sums["total"] or ZERO),
            sums["n"],
            money(sums["opening"] or ZERO),
        )

    transactions = Transaction.objects.filter(scope & _day_filter(day))
    counts = dict(
        completed_payments(transactions)
        .values("driver_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("driver_id", "n")
    )
    problems: dict[int, list[Finding]] = defaultdict(list)
    information: dict[int, list[Finding]] = defaultdict(list)
    for status in payment_statuses(transactions, only_findings=True):
        if (problem := status.problem) is not None:
            problems[status.driver_pk].append(problem)
        if (info := status.information) is not None:
            information[status.driver_pk].append(info)

    closes: dict[int, Decimal] = {}
    if day is not None:
        closes = dict(
            DayClose.objects.filter(scope, business_day=day).values_list(
                "driver_id", "cached_balance"
            )
        )

    snapshots = []
    for row in rows:
        open_day = row["balance_day"] or today
        the_day = day or open_day
        total, n_entries, opening = entries[row["pk"]]
        if the_day == open_day:
            state, old = DayState.OPEN, money(row["current_balance"])
        elif row["pk"] in closes:
            state, old = DayState.CLOSED, money(closes[row["pk"]])
        else:
            state, old = DayState.NOT_RECORDED, total
        snapshots.append(
            BalanceSnapshot(
                driver_pk=row["pk"],
                driver_id=row["driver_id"],
                name=row["name"],
                business_day=the_day,
                day_state=state,
                old_balance=old,
                calculated_balance=total,
                transactions_count=counts.get(row["pk"], 0),
                entries_count=n_entries,
                opening_balance=opening,
                problems=problems.get(row["pk"], []),
                information=information.get(row["pk"], []),
            )
        )
    return snapshots
