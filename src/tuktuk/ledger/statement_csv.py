"""The statement as a spreadsheet.

CSV (`statement_csv`): UTF-8, a header row, CRLF line ends (the csv module's), amounts written
as plain numbers with two decimals. Columns: business_day, time, kind, reference, amount,
driver_share, target_contribution, balance_change, running_balance, detail. Per day, in order:
- an `opening` row: amount = the day's opening; balance_change = opening − the running balance
  before it (the first day: the opening itself; later days: the effect of the previous close);
- one row per transaction (kind payment / adjustment / driver_repayment / self_payment;
  reference = TransID; balance_change = its contribution entry, 0.00 if it has none; a
  self-payment's detail says what went to the target, to adjustments and to the deposit) and
  one row per other ledger entry (correction, deposit, or a contribution whose transaction is
  not listed that day; reference = its note or TransID; balance_change = its amount), in time
  order;
- a `closing` row: amount = the day's closing, balance_change 0.00, running_balance = closing.
A last `total` row: amount = amount received, the totals of driver share and target contribution,
balance_change = running_balance = the closing balance. Summing the balance_change column (total
row excluded) therefore gives the closing balance, and running_balance on each `closing` row is
that day's closing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from decimal import Decimal

from django.utils import timezone

from tuktuk.core.money import ZERO, money
from tuktuk.ledger.models import EntryKind
from tuktuk.ledger.selectors import DayState
from tuktuk.ledger.statement import (
    Statement,
    StatementDay,
    StatementEntry,
    StatementTransaction,
)

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


def statement_csv_filename(statement: Statement) -> str:
    return f"statement-{statement.driver_id}-{statement.date_from}-{statement.date_to}.csv"


def _money(value: Decimal) -> str:
    # format "f": never an exponent ("0E-2"), whatever the database driver handed back.
    return format(money(value), "f")


def _time(moment: dt.datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _close_summary(day: StatementDay) -> str:
    if day.state == DayState.CLOSED:
        met = "met" if day.target_met else "missed"
        return f"closed: target {day.target} {met}, carried over {day.carried_over}"
    if day.state == DayState.OPEN:
        return f"open day: balance so far (cached {day.cached_balance})"
    if day.state == DayState.PENDING:
        return "not closed yet"
    return "no balance recorded"


def _row(**cells: str) -> dict[str, str]:
    return {column: cells.get(column, "") for column in CSV_HEADER}


def statement_csv_records(statement: Statement) -> list[dict[str, str]]:
    """The statement as spreadsheet rows keyed by CSV_HEADER (see the module docstring)."""
    records: list[dict[str, str]] = []
    tx_by_day: dict[dt.date | None, list[StatementTransaction]] = defaultdict(list)
    for tx in statement.transactions:
        tx_by_day[tx.business_day].append(tx)
    entries_by_day: dict[dt.date, list[StatementEntry]] = defaultdict(list)
    for entry in statement.entries:
        entries_by_day[entry.business_day].append(entry)
    zero = _money(ZERO)
    running = ZERO
    for day in statement.days:
        iso = day.business_day.isoformat()
        opened, closes = statement.day_bounds[day.business_day]
        openings = [e for e in entries_by_day[day.business_day] if e.kind == EntryKind.OPENING]
        change = day.opening - running
        running = day.opening
        records.append(
            _row(
                business_day=iso,
                time=_time(opened),
                kind="opening",
                reference="; ".join(e.note for e in openings) or "no carry-over",
                amount=_money(day.opening),
                driver_share=zero,
                target_contribution=zero,
                balance_change=_money(change),
                running_balance=_money(running),
            )
        )
        # A transaction's row carries its contribution entry when both are on this day; any
        # other entry (corrections, an orphaned contribution) gets a row of its own.
        listed = {tx.trans_id for tx in tx_by_day[day.business_day]}
        # (time, entries after transactions at the same time, row, balance change)
        items: list[tuple[dt.datetime, int, dict[str, str], Decimal]] = []
        for tx in tx_by_day[day.business_day]:
            own = tx.entry_amount if tx.entry_business_day == day.business_day else None
            payer = " ".join(part for part in (tx.payer_msisdn, tx.payer_name) if part)
            payout = (
                f"payout {tx.payout_amount} {tx.payout_state} {tx.payout_receipt or ''}".strip()
                if tx.payout_state
                else ""
            )
            if tx.to_adjustments or tx.to_deposit:
                payout = (
                    f"to target {_money(tx.target_contribution)}, to adjustments "
                    f"{_money(tx.to_adjustments)}, to deposit {_money(tx.to_deposit)}"
                )
            row = _row(
                business_day=iso,
                time=_time(tx.received_at),
                kind=tx.transaction_type.lower().replace(" ", "_"),
                reference=tx.trans_id,
                amount=_money(tx.amount),
                driver_share=_money(tx.driver_share),
                target_contribution=_money(tx.target_contribution),
                detail="; ".join(part for part in (payer, payout) if part),
            )
            items.append((tx.received_at, 0, row, own if own is not None else ZERO))
        for entry in entries_by_day[day.business_day]:
            if entry.kind == EntryKind.OPENING or (entry.trans_id and entry.trans_id in listed):
                continue
            row = _row(
                business_day=iso,
                time=_time(entry.created_at),
                kind=entry.kind,
                reference=entry.note or entry.trans_id or "",
                amount=_money(entry.amount),
                driver_share=zero,
                target_contribution=zero,
                detail=f"{entry.kind} entry #{entry.id}",
            )
            items.append((entry.created_at, 1, row, entry.amount))
        items.sort(key=lambda item: (item[0], item[1]))
        for _, _, row, change in items:
            running += change
            records.append(
                {**row, "balance_change": _money(change), "running_balance": _money(running)}
            )
        records.append(
            _row(
                business_day=iso,
                time=_time(closes),
                kind="closing",
                reference=_close_summary(day),
                amount=_money(day.closing),
                driver_share=zero,
                target_contribution=zero,
                balance_change=zero,
                running_balance=_money(running),
            )
        )
    totals = statement.totals
    records.append(
        _row(
            kind="total",
            reference=f"{statement.date_from}..{statement.date_to}",
            amount=_money(totals.amount_received),
            driver_share=_money(totals.driver_share),
            target_contribution=_money(totals.target_contribution),
            balance_change=_money(totals.closing_balance),
            running_balance=_money(totals.closing_balance),
            detail="amount = amount received",
        )
    )
    return records


def statement_csv(statement: Statement) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_HEADER)  # CRLF line ends by default
    writer.writeheader()
    writer.writerows(statement_csv_records(statement))
    return buffer.getvalue()
