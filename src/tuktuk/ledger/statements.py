"""Driver statements and the duplicate-deliveries report: reads only, in a constant number of
queries whatever the length of the range (sums are grouped by day in SQL, never one query a day).

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
- closing        = opening + contributions + corrections = the ledger sum of the day (there are
                   no other entry kinds: a database constraint), which is the balance that closes;
- state          = `closed` (a DayClose row exists; its closing_balance, target, target_met and
                   carried_over are shown as recorded at the close), `open` (the driver's open
                   day; the cached `current_balance` is shown), `pending` (after the open day: that
                   day has not been closed yet, so this one has no entries yet) or `not recorded`
                   (no balance was ever kept, e.g. before the driver's first payment);
- transactions_count, amount_received, adjustments, driver_share, target_contribution: over the
  driver's Completed transactions of that business day (see the totals).

Totals:
- opening_balance  = the first day's opening;  closing_balance = the last day's closing;
- amount_received  = sum of `amount` of Completed transactions of type Payment or Driver
                     Repayment: the money that reached the paybill. An Adjustment is a debt an
                     operator recorded, not money received: it is summed apart as `adjustments`;
- driver_share, target_contribution = sums over the Completed transactions;
- contributions, corrections = sums of those ledger entries over the range;
- carry_over_adjustments = what the day closes inside the range did: at a close the balance
  restarts from the carried-over debt (or 0), so it is Σ (opening of day d − closing of day d−1)
  over every day after the first.
So, exactly: closing_balance = opening_balance + contributions + corrections
+ carry_over_adjustments, and each day's closing = opening + contributions + corrections.

`problems` lists what disagrees with the ledger (a closed day whose entries no longer sum to the
balance recorded at its close, an opening that differs from the carry-over, an open day whose
cached balance differs from its ledger sum, a completed payment without its contribution entry).

Line items: every transaction of the driver in the range (TransID, received time in local time,
i.e. Africa/Nairobi, type, amount, driver share, target contribution, payer, its contribution
entry and its payout's amount/state/receipt) and every ledger entry (kind, amount, note).

CSV (`statement_csv`): UTF-8, a header row, CRLF line ends (the csv module's), amounts written
as plain numbers with two decimals. Columns: business_day, time, kind, reference, amount,
driver_share, target_contribution, balance_change, running_balance, detail. Per day, in order:
- an `opening` row: amount = the day's opening; balance_change = opening − the running balance
  before it (the first day: the opening itself; later days: the effect of the previous close);
- one row per transaction (kind payment / adjustment / driver_repayment; reference = TransID;
  balance_change = its contribution entry, 0.00 if it has none) and one row per other ledger
  entry (correction, or a contribution whose transaction is not listed that day; reference =
  its note or TransID; balance_change = its amount), in time order;
- a `closing` row: amount = the day's closing, balance_change 0.00, running_balance = closing.
A last `total` row: amount = amount received, the totals of driver share and target contribution,
balance_change = running_balance = the closing balance. Summing the balance_change column (total
row excluded) therefore gives the closing balance, and running_balance on each `closing` row is
that day's closing.

Duplicates report
-----------------
A TransID is a duplicate when more than one C2B confirmation callback carrying it is stored. It is
reported in the range of business days in which its first delivery was received (so a TransID
redelivered after midnight appears once, in one report, not split across two), with every
delivery: its time, state (processed / duplicate / failed / ...) and the driver of the
transaction if known. Default range: the last 7 business days up to the current one.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import Any

from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from tuktuk.core.money import ZERO, money
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.business_day import day_close_moment, day_open_moment
from tuktuk.ledger.day_close import current_business_day
from tuktuk.ledger.models import (
    DayClose,
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from tuktuk.ledger.reconciliation import DriverNotFound
from tuktuk.ledger.selectors import DayState
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState

MAX_RANGE_DAYS = 366
DUPLICATES_DEFAULT_DAYS = 7
PENDING = "pending"  # a day after the driver's open day, which has not been closed yet

CSV_HEADER = [
    "business_day",
    "time",
    "kind",
    "reference",
    "amount",
    "driver_share",
    "target_contribution",
    "balance_change",
    "running_balance",
    "detail",
]

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # not \d: it matches any script's digits


class StatementError(ValueError):
    """Bad input for a statement or report, as one line an operator can act on."""


def day_parse(value: str | dt.date | None, *, name: str = "date") -> dt.date | None:
    """A business day written YYYY-MM-DD (None or "" when not given)."""
    if value is None or isinstance(value, dt.date):
        return value
    text = value.strip()
    if not text:
        return None
    if not _ISO_DAY.fullmatch(text):
        raise StatementError(f"{name} must be a day written YYYY-MM-DD, not {value!r}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise StatementError(f"{name} {value!r} is not a real day ({exc})") from exc


def _check_range(date_from: dt.date, date_to: dt.date) -> None:
    if date_from > date_to:
        raise StatementError(f"from {date_from} is after to {date_to}")
    days = (date_to - date_from).days + 1
    if days > MAX_RANGE_DAYS:
        raise StatementError(f"the range has {days} days; at most {MAX_RANGE_DAYS} are allowed")


def _days(date_from: dt.date, date_to: dt.date) -> list[dt.date]:
    return [date_from + dt.timedelta(days=n) for n in range((date_to - date_from).days + 1)]


def _local(moment: dt.datetime | None) -> dt.datetime | None:
    return timezone.localtime(moment) if moment is not None else None


def _amount(value: Decimal | None) -> Decimal:
    return money(value if value is not None else ZERO)


def _csv_money(value: Decimal) -> str:
    # format "f": never an exponent ("0E-2"), whatever the database driver handed back.
    return format(money(value), "f")


def _csv_time(moment: dt.datetime | None) -> str:
    local = _local(moment)
    return local.strftime("%Y-%m-%d %H:%M:%S") if local is not None else ""


# --- the statement -------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementDay:
    business_day: dt.date
    state: str
    opening: Decimal
    contributions: Decimal
    corrections: Decimal
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
    business_day: dt.date
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

    @property
    def csv_filename(self) -> str:
        return f"statement-{self.driver_id}-{self.date_from}-{self.date_to}.csv"

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


def _driver_row(driver_id: str) -> dict[str, Any]:
    row = (
        Driver.objects.filter(driver_id=driver_id.strip().upper())
        .values("pk", "driver_id", "name", "current_balance", "balance_day")
        .first()
    )
    if row is None:
        raise DriverNotFound(f"no driver {driver_id!r}")
    return row


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
        _check_range(first, last)  # refused before any query
    driver = _driver_row(driver_id)
    fleet = FleetSettings.load()
    today = current_business_day(fleet)
    open_day: dt.date = driver["balance_day"] or today
    last = last or open_day
    first = first or last
    _check_range(first, last)
    if last > max(today, open_day):
        raise StatementError(f"{last} is not a business day yet; the current one is {today}")

    in_range = Q(driver_id=driver["pk"], business_day__range=(first, last))
    ledger = {
        row["business_day"]: row
        for row in LedgerEntry.objects.filter(in_range)
        .values("business_day")
        .annotate(
            n=Count("id"),
            opening=Sum("amount", filter=Q(kind=EntryKind.OPENING)),
            contributions=Sum("amount", filter=Q(kind=EntryKind.CONTRIBUTION)),
            corrections=Sum("amount", filter=Q(kind=EntryKind.CORRECTION)),
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
        )
        # Both joins are one-to-one: one row per transaction, payouts without another query.
        for row in Transaction.objects.filter(in_range)
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
        sums, tx = ledger.get(day, {}), money_in.get(day, {})
        opening = _amount(sums.get("opening"))
        contributions = _amount(sums.get("contributions"))
        corrections = _amount(sums.get("corrections"))
        closing = opening + contributions + corrections
        close = closes.get(day)
        if close is not None:
            state = DayState.CLOSED
        elif day == open_day:
            state = DayState.OPEN
        elif day > open_day:
            state = PENDING
        else:
            state = DayState.NOT_RECORDED
        days.append(
            StatementDay(
                business_day=day,
                state=state,
                opening=opening,
                contributions=contributions,
                corrections=corrections,
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
                cached_balance=money(driver["current_balance"]) if state == DayState.OPEN else None,
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
        driver_id=driver["driver_id"],
        name=driver["name"],
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
        if (
            tx.status == TransactionStatus.COMPLETED
            and tx.transaction_type == TransactionType.PAYMENT
            and tx.entry_amount is None
        ):
            problems.append(
                f"{tx.business_day}: payment {tx.trans_id} has no contribution entry "
                f"({tx.target_contribution})"
            )
    return problems


def _close_summary(day: StatementDay) -> str:
    if day.state == DayState.CLOSED:
        met = "met" if day.target_met else "missed"
        return f"closed: target {day.target} {met}, carried over {day.carried_over}"
    if day.state == DayState.OPEN:
        return f"open day: balance so far (cached {day.cached_balance})"
    if day.state == PENDING:
        return "not closed yet"
    return "no balance recorded"


def statement_csv_rows(statement: Statement) -> list[list[str]]:
    """The statement as spreadsheet rows, header first (columns: see the module docstring)."""
    rows = [list(CSV_HEADER)]
    tx_by_day: dict[dt.date, list[StatementTransaction]] = defaultdict(list)
    for tx in statement.transactions:
        tx_by_day[tx.business_day].append(tx)
    entries_by_day: dict[dt.date, list[StatementEntry]] = defaultdict(list)
    for entry in statement.entries:
        entries_by_day[entry.business_day].append(entry)
    running = ZERO
    for day in statement.days:
        iso = day.business_day.isoformat()
        opened, closes = statement.day_bounds[day.business_day]
        openings = [e for e in entries_by_day[day.business_day] if e.kind == EntryKind.OPENING]
        change = day.opening - running
        running = day.opening
        rows.append(
            [
                iso,
                _csv_time(opened),
                "opening",
                "; ".join(e.note for e in openings) or "no carry-over",
                _csv_money(day.opening),
                _csv_money(ZERO),
                _csv_money(ZERO),
                _csv_money(change),
                _csv_money(running),
                "",
            ]
        )
        # A transaction's row carries its contribution entry when both are on this day; any
        # other entry (corrections, an orphaned contribution) gets a row of its own.
        listed = {tx.trans_id for tx in tx_by_day[day.business_day]}
        # (time, entries after transactions at the same time, cells, balance change, detail)
        items: list[tuple[dt.datetime, int, list[str], Decimal, str]] = []
        for tx in tx_by_day[day.business_day]:
            change = tx.entry_amount if tx.entry_business_day == day.business_day else None
            payer = " ".join(part for part in (tx.payer_msisdn, tx.payer_name) if part)
            payout = (
                f"payout {tx.payout_amount} {tx.payout_state} {tx.payout_receipt or ''}".strip()
                if tx.payout_state
                else ""
            )
            detail = "; ".join(part for part in (payer, payout) if part)
            items.append(
                (
                    tx.received_at,
                    0,
                    [
                        iso,
                        _csv_time(tx.received_at),
                        tx.transaction_type.lower().replace(" ", "_"),
                        tx.trans_id,
                        _csv_money(tx.amount),
                        _csv_money(tx.driver_share),
                        _csv_money(tx.target_contribution),
                    ],
                    change if change is not None else ZERO,
                    detail,
                )
            )
        for entry in entries_by_day[day.business_day]:
            if entry.kind == EntryKind.OPENING or (entry.trans_id and entry.trans_id in listed):
                continue
            reference = entry.note or entry.trans_id or ""
            items.append(
                (
                    entry.created_at,
                    1,
                    [
                        iso,
                        _csv_time(entry.created_at),
                        entry.kind,
                        reference,
                        _csv_money(entry.amount),
                        _csv_money(ZERO),
                        _csv_money(ZERO),
                    ],
                    entry.amount,
                    f"{entry.kind} entry #{entry.id}",
                )
            )
        items.sort(key=lambda item: (item[0], item[1]))
        for _, _, cells, change, detail in items:
            running += change
            rows.append([*cells, _csv_money(change), _csv_money(running), detail])
        rows.append(
            [
                iso,
                _csv_time(closes),
                "closing",
                _close_summary(day),
                _csv_money(day.closing),
                _csv_money(ZERO),
                _csv_money(ZERO),
                _csv_money(ZERO),
                _csv_money(running),
                "",
            ]
        )
    totals = statement.totals
    rows.append(
        [
            "",
            "",
            "total",
            f"{statement.date_from}..{statement.date_to}",
            _csv_money(totals.amount_received),
            _csv_money(totals.driver_share),
            _csv_money(totals.target_contribution),
            _csv_money(totals.closing_balance),
            _csv_money(totals.closing_balance),
            "amount = amount received",
        ]
    )
    return rows


def statement_csv(statement: Statement) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(statement_csv_rows(statement))  # CRLF line ends by default
    return buffer.getvalue()


# --- duplicates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    callback_id: int
    received_at: dt.datetime
    state: str
    error: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DuplicateTransId:
    trans_id: str
    deliveries: list[Delivery]
    driver_id: str | None = None
    driver_name: str | None = None
    amount: Decimal | None = None

    @property
    def count(self) -> int:
        return len(self.deliveries)

    @property
    def processed(self) -> int:
        """Deliveries that credited money: more than one would be a double credit."""
        return sum(1 for d in self.deliveries if d.state == CallbackState.PROCESSED)

    def as_dict(self) -> dict[str, Any]:
        return {
            "trans_id": self.trans_id,
            "count": self.count,
            "processed": self.processed,
            "driver_id": self.driver_id,
            "driver_name": self.driver_name,
            "amount": self.amount,
            "first_received_at": self.deliveries[0].received_at,
            "last_received_at": self.deliveries[-1].received_at,
            "deliveries": [d.as_dict() for d in self.deliveries],
        }


@dataclass(frozen=True)
class DuplicatesReport:
    date_from: dt.date
    date_to: dt.date
    since: dt.datetime
    until: dt.datetime
    duplicates: list[DuplicateTransId]

    @property
    def deliveries(self) -> int:
        return sum(d.count for d in self.duplicates)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.date_from,
            "to": self.date_to,
            "since": self.since,
            "until": self.until,
            "trans_ids": len(self.duplicates),
            "deliveries": self.deliveries,
            "duplicates": [d.as_dict() for d in self.duplicates],
        }


def duplicates_report(
    *, date_from: dt.date | str | None = None, date_to: dt.date | str | None = None
) -> DuplicatesReport:
    """TransIDs with more than one stored C2B confirmation, first delivered in business days
    date_from..date_to (see the module docstring). Two or three queries, never one per TransID."""
    first = day_parse(date_from, name="from")
    last = day_parse(date_to, name="to")
    if first is not None and last is not None:
        _check_range(first, last)
    fleet = FleetSettings.load()
    last = last or current_business_day(fleet)
    first = first or last - dt.timedelta(days=DUPLICATES_DEFAULT_DAYS - 1)
    _check_range(first, last)
    since = day_open_moment(first, fleet=fleet)
    until = day_close_moment(last, fleet=fleet)

    confirmations = Callback.objects.filter(kind=CallbackKind.C2B_CONFIRMATION).exclude(trans_id="")
    # Only TransIDs delivered in the range are grouped (the trans_id index narrows it), then
    # all their deliveries count, wherever they fall.
    seen = confirmations.filter(received_at__gte=since, received_at__lt=until).values("trans_id")
    repeated = (
        confirmations.filter(trans_id__in=seen)
        .values("trans_id")
        .annotate(n=Count("id"), first=Min("received_at"))
        .filter(n__gt=1, first__gte=since, first__lt=until)
        .order_by()
        .values("trans_id")
    )
    by_trans_id: dict[str, DuplicateTransId] = {}
    for row in (
        confirmations.filter(trans_id__in=repeated)
        .order_by("received_at", "pk")
        .values(
            "pk",
            "trans_id",
            "received_at",
            "state",
            "error",
            "transaction__amount",
            "transaction__driver__driver_id",
            "transaction__driver__name",
        )
    ):
        duplicate = by_trans_id.setdefault(
            row["trans_id"], DuplicateTransId(trans_id=row["trans_id"], deliveries=[])
        )
        duplicate.deliveries.append(
            Delivery(
                callback_id=row["pk"],
                received_at=timezone.localtime(row["received_at"]),
                state=row["state"],
                error=row["error"],
            )
        )
        if duplicate.driver_id is None and row["transaction__driver__driver_id"]:
            duplicate.driver_id = row["transaction__driver__driver_id"]
            duplicate.driver_name = row["transaction__driver__name"]
        if duplicate.amount is None and row["transaction__amount"] is not None:
            duplicate.amount = money(row["transaction__amount"])
    # Deliveries that failed before posting carry no transaction link: look those up once.
    unlinked = [d.trans_id for d in by_trans_id.values() if d.driver_id is None]
    if unlinked:
        for tx in Transaction.objects.filter(trans_id__in=unlinked).values(
            "trans_id", "amount", "driver__driver_id", "driver__name"
        ):
            duplicate = by_trans_id[tx["trans_id"]]
            duplicate.driver_id = tx["driver__driver_id"]
            duplicate.driver_name = tx["driver__name"]
            duplicate.amount = money(tx["amount"])
    return DuplicatesReport(
        date_from=first,
        date_to=last,
        since=timezone.localtime(since),
        until=timezone.localtime(until),
        duplicates=list(by_trans_id.values()),
    )
