"""Driver statements: reads only, in a constant number of queries whatever the length of the
range (sums are grouped by day in SQL, never one query a day).

Driver statement of one driver for business days FROM..TO, both inclusive
---------------------------------------------------------------------------
Defaults: no TO → the driver's open business day (the day its cached balance belongs to, i.e.
`balance_day`, or the current business day for a driver never paid); no FROM → TO. FROM ≤ TO, at
most 366 days, and TO not after the current business day (later days have no balance yet).
Dates are written YYYY-MM-DD. The driver is named by its id (DRV-112001), never by its name.

Per day, from the ledger (the driver's `LedgerEntry` rows of that business day):
- opening        = sum of the day's `opening` entries: the carry-over written when the previous
                   day closed (0 if there is none, e.g. the first day or target sharing off);
- contributions  = sum of the day's `contribution` entries;
- corrections    = sum of the day's `correction` entries;
- from_deposit   = sum of the day's `deposit` entries: deposit money moved to the target (an
                   approved target deduction, a refund settling carried debt);
- closing        = opening + contributions + corrections + from_deposit = the ledger sum of the
                   day (there are no other entry kinds: a database constraint), which is the
                   balance that closes;
- state          = `closed` (a DayClose row exists; its closing_balance, target, target_met and
                   carried_over are shown as recorded at the close), `open` (the driver's open
                   day; the cached `current_balance` is shown), `pending` (after the open day: that
                   day has not been closed yet, so this one has no entries yet) or `not recorded`
                   (no balance was ever kept, e.g. before the driver's first payment);
- transactions_count, amount_received, adjustments, driver_share, target_contribution: over the
  driver's Completed transactions of that business day (see the totals).

Totals:
- opening_balance  = the first day's opening;  closing_balance = the last day's closing;
- amount_received  = sum of `amount` of Completed transactions of type Payment, Self Payment
                     or Driver Repayment: the money that reached the paybill. An Adjustment is
                     a debt an operator recorded, not money received: it is summed apart as
                     `adjustments`;
- driver_share, target_contribution = sums over the Completed transactions;
- contributions, corrections, from_deposit = sums of those ledger entries over the range;
- carry_over_adjustments = what the day closes inside the range did: at a close the balance
  restarts from the carried-over debt (or 0), so it is Σ (opening of day d − closing of day d−1)
  over every day after the first.
So, exactly: closing_balance = opening_balance + contributions + corrections + from_deposit
+ carry_over_adjustments, and each day's closing = opening + contributions + corrections
+ from_deposit.

`problems` lists what disagrees with the ledger (a closed day whose entries no longer sum to the
balance recorded at its close, an opening that differs from the carry-over, an open day whose
cached balance differs from its ledger sum, a completed payment without its contribution entry).

Line items: every transaction of the driver in the range (TransID, received time in local time,
i.e. Africa/Nairobi, type, amount, driver share, target contribution, payer, its contribution
entry and its payout's amount/state/receipt; for a self-payment, what went to adjustments and
to the deposit besides its target contribution) and every ledger entry (kind, amount, note).

The CSV rendering is in `tuktuk.ledger.statement_csv`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import Any

from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from tuktuk.core.dates import day_parse
from tuktuk.core.errors import InvalidInput
from tuktuk.core.money import ZERO, MoneyField, money
from tuktuk.fleet.models import FleetSettings
from tuktuk.fleet.selectors import driver_get
from tuktuk.ledger.business_day import day_close_moment, day_open_moment
from tuktuk.ledger.day_close import current_business_day
from tuktuk.ledger.models import (
    AdjustmentRepayment,
    DayClose,
    DepositEntry,
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from tuktuk.ledger.payment_status import CONTRIBUTING_TYPES, PaymentStatus
from tuktuk.ledger.selectors import DayState

MAX_RANGE_DAYS = 366


def _sum_of(model: type[AdjustmentRepayment] | type[DepositEntry]) -> Subquery:
    """The sum of `model.amount` over the rows that point at the outer transaction."""
    rows = model.objects.filter(transaction=OuterRef("pk")).order_by().values("transaction")
    return Subquery(rows.annotate(s=Sum("amount")).values("s"), output_field=MoneyField())


def day_range_check(date_from: dt.date, date_to: dt.date) -> None:
    """A range of business days an operator may ask for: in order, at most a year."""
    if date_from > date_to:
        raise InvalidInput(f"from {date_from} is after to {date_to}")
    days = (date_to - date_from).days + 1
    if days > MAX_RANGE_DAYS:
        raise InvalidInput(f"the range has {days} days; at most {MAX_RANGE_DAYS} are allowed")


def _days(date_from: dt.date, date_to: dt.date) -> list[dt.date]:
    return [date_from + dt.timedelta(days=n) for n in range((date_to - date_from).days + 1)]


def _local(moment: dt.datetime | None) -> dt.datetime | None:
    return timezone.localtime(moment) if moment is not None else None


def _amount(value: Decimal | None) -> Decimal:
    return money(value if value is not None else ZERO)


# --- the statement -------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementDay:
    business_day: dt.date
    state: DayState
    opening: Decimal
    contributions: Decimal
    corrections: Decimal
    from_deposit: Decimal  # deposit money moved to the target (approved deductions, refunds)
    closing: Decimal
    entries_count: int
    transactions_count: int
    amount_received: Decimal
    adjustments: Decimal
    driver_share: Decimal
    target_contribution: Decimal
    # As recorded by the DayClose row (closed days only).
    recorded_closing_balance: Decimal | None = None
    target: Decimal | None = None
    target_met: bool | None = None
    carried_over: Decimal | None = None
    # The driver's cached balance (the open day only).
    cached_balance: Decimal | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StatementTransaction:
    business_day: dt.date | None  # None: an uncaptured payment, not yet any driver's
    trans_id: str
    received_at: dt.datetime
    transaction_type: str
    status: str
    amount: Decimal
    driver_share: Decimal
    target_contribution: Decimal
    payer_msisdn: str
    payer_name: str
    entry_amount: Decimal | None  # its contribution entry; None when there is none
    entry_business_day: dt.date | None
    payout_amount: Decimal | None
    payout_state: str | None
    payout_receipt: str | None
    corrected: Decimal  # corrections posted for it since (possibly on a later day)
    # Where a self-payment (or repayment) went besides the target: adjustments, the deposit.
    to_adjustments: Decimal = ZERO
    to_deposit: Decimal = ZERO

    @property
    def ledger_status(self) -> PaymentStatus | None:
        """Its standing in the ledger (completed payments only), by the one shared rule."""
        if not (
            self.status == TransactionStatus.COMPLETED
            and self.transaction_type in CONTRIBUTING_TYPES
        ):
            return None
        return PaymentStatus(
            driver_pk=0,
            trans_id=self.trans_id,
            business_day=self.business_day,
            target_contribution=self.target_contribution,
            entry_amount=self.entry_amount,
            corrected=self.corrected,
            redeliveries=0,
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StatementEntry:
    id: int
    business_day: dt.date
    kind: str
    amount: Decimal
    trans_id: str | None
    note: str
    created_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StatementTotals:
    opening_balance: Decimal
    contributions: Decimal
    corrections: Decimal
    from_deposit: Decimal
    carry_over_adjustments: Decimal
    closing_balance: Decimal
    transactions_count: int
    amount_received: Decimal
    adjustments: Decimal
    driver_share: Decimal
    target_contribution: Decimal

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Statement:
    driver_id: str
    name: str
    date_from: dt.date
    date_to: dt.date
    open_day: dt.date
    days: list[StatementDay]
    transactions: list[StatementTransaction]
    entries: list[StatementEntry]
    totals: StatementTotals
    problems: list[str]
    # Per day: when it opened and closes (for the CSV's opening and closing rows).
    day_bounds: dict[dt.date, tuple[dt.datetime, dt.datetime]] = field(repr=False)

    @property
    def opening_balance(self) -> Decimal:
        return self.totals.opening_balance

    @property
    def closing_balance(self) -> Decimal:
        return self.totals.closing_balance

    def as_dict(self) -> dict[str, Any]:
        return {
            "driver_id": self.driver_id,
            "name": self.name,
            "from": self.date_from,
            "to": self.date_to,
            "open_day": self.open_day,
            "opening_balance": self.totals.opening_balance,
            "closing_balance": self.totals.closing_balance,
            "totals": self.totals.as_dict(),
            "days": [day.as_dict() for day in self.days],
            "transactions": [tx.as_dict() for tx in self.transactions],
            "entries": [entry.as_dict() for entry in self.entries],
            "problems": list(self.problems),
        }


def driver_statement(
    *,
    driver_id: str,
    date_from: dt.date | str | None = None,
    date_to: dt.date | str | None = None,
) -> Statement:
    """The driver's statement for business days date_from..date_to (see the module docstring).
    Seven queries whatever the length of the range."""
    first = day_parse(date_from, name="from")
    last = day_parse(date_to, name="to")
    if first is not None and last is not None:
        day_range_check(first, last)  # refused before any query
    driver = driver_get(ref=driver_id)
    fleet = FleetSettings.load()
    today = current_business_day(fleet)
    open_day: dt.date = driver.balance_day or today
    last = last or open_day
    first = first or last
    day_range_check(first, last)
    if last > max(today, open_day):
        raise InvalidInput(f"{last} is not a business day yet; the current one is {today}")

    in_range = Q(driver_id=driver.pk, business_day__range=(first, last))
    ledger = {
        row["business_day"]: row
        for row in LedgerEntry.objects.filter(in_range)
        .values("business_day")
        .annotate(
            n=Count("id"),
            opening=Sum("amount", filter=Q(kind=EntryKind.OPENING)),
            contributions=Sum("amount", filter=Q(kind=EntryKind.CONTRIBUTION)),
            corrections=Sum("amount", filter=Q(kind=EntryKind.CORRECTION)),
            from_deposit=Sum("amount", filter=Q(kind=EntryKind.DEPOSIT)),
        )
        .order_by()
    }
    is_adjustment = Q(transaction_type=TransactionType.ADJUSTMENT)
    money_in = {
        row["business_day"]: row
        for row in Transaction.objects.filter(in_range, status=TransactionStatus.COMPLETED)
        .values("business_day")
        .annotate(
            n=Count("id"),
            received=Sum("amount", filter=~is_adjustment),
            adjustments=Sum("amount", filter=is_adjustment),
            share=Sum("driver_share"),
            contribution=Sum("target_contribution"),
        )
        .order_by()
    }
    closes = {close.business_day: close for close in DayClose.objects.filter(in_range)}
    transactions = [
        StatementTransaction(
            business_day=row["business_day"],
            trans_id=row["trans_id"],
            received_at=timezone.localtime(row["received_at"]),
            transaction_type=row["transaction_type"],
            status=row["status"],
            amount=money(row["amount"]),
            driver_share=money(row["driver_share"]),
            target_contribution=money(row["target_contribution"]),
            payer_msisdn=row["payer_msisdn"],
            payer_name=row["payer_name"],
            entry_amount=None if row["entry__amount"] is None else money(row["entry__amount"]),
            entry_business_day=row["entry__business_day"],
            payout_amount=None if row["payout__amount"] is None else money(row["payout__amount"]),
            payout_state=row["payout__state"],
            payout_receipt=row["payout__receipt"],
            corrected=money(row["corrected"] or ZERO),
            to_adjustments=_amount(row["to_adjustments"]),
            to_deposit=_amount(row["to_deposit"]),
        )
        # Both joins are one-to-one: one row per transaction, payouts without another query.
        for row in Transaction.objects.filter(in_range)
        .annotate(
            corrected=Sum("correction_entries__amount"),
            # Subqueries, not joins: a join to either would multiply the corrections' sum.
            to_adjustments=_sum_of(AdjustmentRepayment),
            to_deposit=_sum_of(DepositEntry),
        )
        .order_by("received_at", "pk")
        .values(
            "business_day",
            "trans_id",
            "received_at",
            "transaction_type",
            "status",
            "amount",
            "driver_share",
            "target_contribution",
            "payer_msisdn",
            "payer_name",
            "entry__amount",
            "entry__business_day",
            "payout__amount",
            "payout__state",
            "payout__receipt",
            "corrected",
            "to_adjustments",
            "to_deposit",
        )
    ]
    entries = [
        StatementEntry(
            id=row["pk"],
            business_day=row["business_day"],
            kind=row["kind"],
            amount=money(row["amount"]),
            trans_id=row["transaction__trans_id"],
            note=row["note"],
            created_at=timezone.localtime(row["created_at"]),
        )
        for row in LedgerEntry.objects.filter(in_range)
        .order_by("business_day", "created_at", "pk")
        .values(
            "pk", "business_day", "kind", "amount", "transaction__trans_id", "note", "created_at"
        )
    ]

    days: list[StatementDay] = []
    for day in _days(first, last):
        sums: Mapping[str, Any] = ledger.get(day, {})
        tx: Mapping[str, Any] = money_in.get(day, {})
        opening = _amount(sums.get("opening"))
        contributions = _amount(sums.get("contributions"))
        corrections = _amount(sums.get("corrections"))
        from_deposit = _amount(sums.get("from_deposit"))
        closing = opening + contributions + corrections + from_deposit
        close = closes.get(day)
        if close is not None:
            state = DayState.CLOSED
        elif day == open_day:
            state = DayState.OPEN
        elif day > open_day:
            state = DayState.PENDING
        else:
            state = DayState.NOT_RECORDED
        days.append(
            StatementDay(
                business_day=day,
                state=state,
                opening=opening,
                contributions=contributions,
                corrections=corrections,
                from_deposit=from_deposit,
                closing=closing,
                entries_count=sums.get("n", 0),
                transactions_count=tx.get("n", 0),
                amount_received=_amount(tx.get("received")),
                adjustments=_amount(tx.get("adjustments")),
                driver_share=_amount(tx.get("share")),
                target_contribution=_amount(tx.get("contribution")),
                recorded_closing_balance=money(close.closing_balance) if close else None,
                target=money(close.target) if close else None,
                target_met=close.target_met if close else None,
                carried_over=money(close.carried_over) if close else None,
                cached_balance=money(driver.current_balance) if state == DayState.OPEN else None,
            )
        )
    problems = _problems(days, transactions)

    carry_over = sum(
        (later.opening - earlier.closing for earlier, later in pairwise(days)),
        ZERO,
    )
    totals = StatementTotals(
        opening_balance=days[0].opening,
        contributions=sum((d.contributions for d in days), ZERO),
        corrections=sum((d.corrections for d in days), ZERO),
        from_deposit=sum((d.from_deposit for d in days), ZERO),
        carry_over_adjustments=carry_over,
        closing_balance=days[-1].closing,
        transactions_count=sum(d.transactions_count for d in days),
        amount_received=sum((d.amount_received for d in days), ZERO),
        adjustments=sum((d.adjustments for d in days), ZERO),
        driver_share=sum((d.driver_share for d in days), ZERO),
        target_contribution=sum((d.target_contribution for d in days), ZERO),
    )
    bounds = {
        day: (
            timezone.localtime(day_open_moment(day, fleet=fleet)),
            timezone.localtime(day_close_moment(day, fleet=fleet)),
        )
        for day in _days(first, last)
    }
    return Statement(
        driver_id=driver.driver_id,
        name=driver.name,
        date_from=first,
        date_to=last,
        open_day=open_day,
        days=days,
        transactions=transactions,
        entries=entries,
        totals=totals,
        problems=problems,
        day_bounds=bounds,
    )


def _problems(days: list[StatementDay], transactions: list[StatementTransaction]) -> list[str]:
    problems = []
    previous: StatementDay | None = None
    for day in days:
        if day.recorded_closing_balance is not None and day.recorded_closing_balance != day.closing:
            problems.append(
                f"{day.business_day}: closed at {day.recorded_closing_balance} but its ledger "
                f"entries now sum to {day.closing}"
            )
        if (
            previous is not None
            and previous.carried_over is not None
            and day.opening != previous.carried_over
        ):
            problems.append(
                f"{day.business_day}: opening {day.opening} differs from the "
                f"{previous.carried_over} carried over at the close of {previous.business_day}"
            )
        if day.cached_balance is not None and day.cached_balance != day.closing:
            problems.append(
                f"{day.business_day}: cached balance {day.cached_balance} differs from the "
                f"ledger sum {day.closing} (run a reconciliation)"
            )
        previous = day
    for tx in transactions:
        status = tx.ledger_status
        if status is not None and status.problem is not None:
            problems.append(f"{tx.business_day}: payment {tx.trans_id}: {status.problem.detail}")
    return problems
