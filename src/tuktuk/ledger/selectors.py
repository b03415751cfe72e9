"""Reads for reconciliation: each driver's cached balance against its ledger, in a constant
number of queries however many drivers there are (the single-driver check uses the same path).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, F, Q, Sum

from tuktuk.core.money import ZERO, money
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.day_close import current_business_day
from tuktuk.ledger.models import (
    DayClose,
    LedgerEntry,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState


class DayState:
    OPEN = "open"  # the day the cached balance belongs to
    CLOSED = "closed"  # compared with the cached balance recorded at its close
    NOT_RECORDED = "not recorded"  # no balance was ever kept for the driver on that day


@dataclass
class Problem:
    type: str
    trans_id: str
    detail: str
    # Money problems need a fix; information (a TransID delivered twice) does not.
    needs_fix: bool = True

    def as_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "trans_id": self.trans_id,
            "detail": self.detail,
            "needs_fix": self.needs_fix,
        }


@dataclass
class BalanceSnapshot:
    driver_pk: int
    driver_id: str
    name: str
    business_day: dt.date
    day_state: str
    old_balance: Decimal
    calculated_balance: Decimal
    transactions_count: int = 0
    entries_count: int = 0
    opening_balance: Decimal = ZERO
    problems: list[Problem] = field(default_factory=list)

    @property
    def discrepancy(self) -> Decimal:
        return self.old_balance - self.calculated_balance

    @property
    def needs_fix(self) -> bool:
        return self.discrepancy != 0 or any(p.needs_fix for p in self.problems)


def _day_filter(day: dt.date | None, prefix: str = "") -> Q:
    """Entries/transactions of the given day, or of each driver's own open day."""
    if day is not None:
        return Q(**{f"{prefix}business_day": day})
    return Q(**{f"{prefix}business_day": F(f"{prefix}driver__balance_day")})


def balance_snapshots(
    *, driver_pks: list[int] | None = None, day: dt.date | None = None
) -> list[BalanceSnapshot]:
    """Cached vs ledger balance for active drivers (or the given ones) on `day` (default: each
    driver's open day). Six queries whatever the number of drivers and entries."""
    fleet = FleetSettings.load()
    today = current_business_day(fleet)
    drivers = (
        Driver.objects.all() if driver_pks is not None else Driver.objects.filter(is_active=True)
    )
    if driver_pks is not None:
        drivers = drivers.filter(pk__in=driver_pks)
    rows = list(
        drivers.order_by("driver_id").values(
            "pk", "driver_id", "name", "current_balance", "balance_day"
        )
    )
    scope = Q(driver__in=drivers)

    entries = defaultdict(lambda: (ZERO, 0, ZERO))
    for row in (
        LedgerEntry.objects.filter(scope & _day_filter(day))
        .values("driver_id")
        .annotate(
            total=Sum("amount"),
            n=Count("id"),
            opening=Sum("amount", filter=Q(kind="opening")),
        )
    ):
        entries[row["driver_id"]] = (
            money(row["total"] or ZERO),
            row["n"],
            money(row["opening"] or ZERO),
        )

    payments = Transaction.objects.filter(
        scope & _day_filter(day),
        status=TransactionStatus.COMPLETED,
        transaction_type=TransactionType.PAYMENT,
    )
    counts = dict(
        payments.values("driver_id").annotate(n=Count("id")).values_list("driver_id", "n")
    )
    problems: dict[int, list[Problem]] = defaultdict(list)
    # A payment's contribution as the ledger has it: its own entry plus any corrections
    # posted for it later (closed days are corrected in the open day, never rewritten).
    for tx in (
        payments.annotate(corrected=Sum("correction_entries__amount"))
        .values("driver_id", "trans_id", "target_contribution", "entry__amount", "corrected")
        .iterator()
    ):
        own, corrected = tx["entry__amount"], tx["corrected"] or ZERO
        if own is None and corrected != tx["target_contribution"]:
            problems[tx["driver_id"]].append(
                Problem(
                    "missing_entry",
                    tx["trans_id"],
                    f"completed payment has no contribution entry "
                    f"({tx['target_contribution']} KSH)",
                )
            )
        elif own is not None and own + corrected != tx["target_contribution"]:
            problems[tx["driver_id"]].append(
                Problem(
                    "entry_mismatch",
                    tx["trans_id"],
                    f"entry {own + corrected} KSH differs from contribution "
                    f"{tx['target_contribution']} KSH",
                )
            )
    for row in (
        Callback.objects.filter(Q(transaction__in=payments) & Q(kind=CallbackKind.C2B_CONFIRMATION))
        .values("transaction__driver_id", "trans_id")
        .annotate(n=Count("id"), posted=Count("id", filter=Q(state=CallbackState.PROCESSED)))
        .filter(n__gt=1)
    ):
        problems[row["transaction__driver_id"]].append(
            Problem(
                "duplicate_trans_id",
                row["trans_id"],
                f"delivered {row['n']} times, posted {row['posted']} time(s)",
                needs_fix=row["posted"] > 1,
            )
        )

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
            )
        )
    return snapshots
