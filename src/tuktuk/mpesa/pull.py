"""Missed C2B confirmations found automatically: Daraja's Pull Transactions list compared with
ours, and what is missing posted through the normal posting path (source "pull").

M-Pesa keeps the list for 48 hours. Exactly once holds as for any delivery: the unique TransID
and the posting's duplicate handling make a recovery racing a late webhook (or a second run)
credit nothing the second time. The query runs before any transaction is opened; each
recovery is then its own posting transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.db import connection
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.clock import aware
from tuktuk.core.errors import InvalidInput
from tuktuk.ledger.models import Transaction, TransactionSource
from tuktuk.ledger.services import IncomingPayment, PostingOutcome, payment_post
from tuktuk.mpesa.c2b import CallbackRejected, parse_amount
from tuktuk.mpesa.daraja import PullFailed
from tuktuk.mpesa.models import Callback, CallbackKind

logger = logging.getLogger(__name__)

# How far back M-Pesa answers. A window reaching further is cut, with a minute to spare so a
# request built now is not refused for being on the edge when it arrives.
HISTORY = dt.timedelta(hours=48)
EDGE_MARGIN = dt.timedelta(minutes=1)

_TRANS_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
# trxDate as Daraja's sample writes it ("2020-08-05T10:13:00Z"), and the other shapes Daraja
# uses for times. Read as Kenyan wall-clock time like every Daraja time (TransTime,
# StartDate): the trailing Z of the sample is not taken to mean UTC (see docs/design.md).
_TRX_DATE_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S")
_LOOKUP_CHUNK = 500  # TransIDs per IN (...) lookup: SQLite's variable limit is far above


class PullSource(Protocol):
    """Where the list comes from: tuktuk.mpesa.daraja.DarajaClient."""

    def pull_transactions(self, *, since: dt.datetime, until: dt.datetime) -> list[Any]: ...


class RowRejected(ValueError):
    pass


@dataclass
class PullRunResult:
    since: dt.datetime
    until: dt.datetime
    listed: int = 0  # rows M-Pesa returned
    known: int = 0  # already ours (a transaction or a stored confirmation)
    recovered: list[str] = field(default_factory=list)
    raced: list[str] = field(default_factory=list)  # a webhook delivery got there first
    skipped: dict[str, str] = field(default_factory=dict)  # row label -> why it was unusable
    failed: dict[str, str] = field(default_factory=dict)  # TransID -> posting error
    error: str = ""  # the query itself failed: nothing was compared

    @property
    def ok(self) -> bool:
        return not self.error and not self.failed

    @property
    def needs_attention(self) -> bool:
        """An operator must look: M-Pesa holds money we could not credit (or could not ask)."""
        return bool(self.error or self.failed or self.skipped)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "listed": self.listed,
            "known": self.known,
            "recovered": list(self.recovered),
            "raced": list(self.raced),
            "skipped": dict(self.skipped),
            "failed": dict(self.failed),
            "error": self.error,
        }


def pull_window(
    *, now: dt.datetime, covered_until: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """The window of a scheduled run: from where the last complete run ended (else one
    interval ago), less the overlap, never further back than M-Pesa keeps; up to now."""
    every = dt.timedelta(minutes=settings.PULL_EVERY_MINUTES)
    overlap = dt.timedelta(minutes=settings.PULL_OVERLAP_MINUTES)
    start = min(covered_until or now - every, now - every) - overlap
    return max(start, now - HISTORY + EDGE_MARGIN), now


def pull_window_check(*, since: dt.datetime, until: dt.datetime, now: dt.datetime) -> None:
    """A window an operator asked for: InvalidInput unless M-Pesa can answer it."""
    if since >= until:
        raise InvalidInput("--since must be before --until")
    if since < now - HISTORY + EDGE_MARGIN:
        raise InvalidInput(
            "--since is more than 48 hours ago: M-Pesa's Pull Transactions list keeps only the "
            "last 48 hours (record older payments with `tuktuk payment record-missed`)"
        )
    if until > now + EDGE_MARGIN:
        raise InvalidInput("--until is in the future")


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        raise RowRejected(f"{key} is not a string")
    text = str(value).strip()
    if any(ord(char) < 32 for char in text):
        raise RowRejected(f"{key} contains control characters")
    return text


def _trx_date(raw: str) -> dt.datetime | None:
    text = raw.removesuffix("Z").split(".")[0]
    for layout in _TRX_DATE_FORMATS:
        try:
            return aware(dt.datetime.strptime(text, layout))
        except ValueError:
            continue
    return None


def pull_row_parse(row: Any) -> IncomingPayment:
    """One row of the list as a payment, or RowRejected saying why it cannot be one."""
    if not isinstance(row, dict):
        raise RowRejected(f"row is a {type(row).__name__}, not an object")
    trans_id = _text(row, "transactionId")
    if not _TRANS_ID.match(trans_id):
        raise RowRejected(f"transactionId {trans_id[:80]!r} is not an M-Pesa receipt number")
    try:
        amount = parse_amount(_text(row, "amount"), maximum=settings.MAX_PAYMENT_AMOUNT)
    except CallbackRejected as exc:
        raise RowRejected(str(exc).replace("TransAmount", "amount")) from exc
    return IncomingPayment(
        trans_id=trans_id,
        amount=amount,
        account_reference=_text(row, "billreference"),
        payer_msisdn=_text(row, "msisdn"),
        payer_name=_text(row, "sender"),
        # As for a confirmation, a bad time is no reason to lose a fare: posted as received now.
        mpesa_time=_trx_date(_text(row, "trxDate")),
    )


def _as_json(row: Any) -> Any:
    """The row as the event log can keep it (amounts arrive as exact Decimals)."""
    if not isinstance(row, dict):
        return repr(row)[:500]
    return json.loads(json.dumps(row, default=str))


def _row_label(row: Any, index: int) -> str:
    trans_id = row.get("transactionId") if isinstance(row, dict) else None
    text = str(trans_id)[:64] if isinstance(trans_id, str | int) and str(trans_id) else ""
    return text or f"row {index}"


def known_trans_ids(trans_ids: list[str]) -> set[str]:
    """TransIDs we have: a transaction, or a stored confirmation (posted, failed and waiting
    for its replay, or kept as rejected for an operator)."""
    known: set[str] = set()
    for start in range(0, len(trans_ids), _LOOKUP_CHUNK):
        chunk = trans_ids[start : start + _LOOKUP_CHUNK]
        known.update(
            Transaction.objects.filter(trans_id__in=chunk).values_list("trans_id", flat=True)
        )
        known.update(
            Callback.objects.filter(
                kind=CallbackKind.C2B_CONFIRMATION, trans_id__in=chunk
            ).values_list("trans_id", flat=True)
        )
    return known


def _recover(result: PullRunResult, payment: IncomingPayment, actor: str) -> None:
    try:
        posting = payment_post(payment=payment, source=TransactionSource.PULL)
    except Exception as exc:  # one payment's failure must not stop the others
        logger.exception("recovering a pulled payment failed", extra={"trans_id": payment.trans_id})
        error = f"{type(exc).__name__}: {exc}"[:500]
        result.failed[payment.trans_id] = error
        events.event_record(
            title=events.EventTitle.PULL_FAILED,
            level=events.EventLevel.ERROR,
            message=f"TransID {payment.trans_id} ({payment.amount} KSH) could not be posted: "
            f"{error}",
            data={"trans_id": payment.trans_id, "amount": str(payment.amount), "error": error},
            actor=actor,
        )
        return
    if posting.outcome is PostingOutcome.DUPLICATE:
        result.raced.append(payment.trans_id)  # the posting recorded its duplicate event
        return
    result.recovered.append(payment.trans_id)
    transaction = posting.transaction
    events.event_record(
        title=events.EventTitle.PAYMENT_RECOVERED,
        level=events.EventLevel.WARNING,
        driver=transaction.driver,
        message=f"TransID {payment.trans_id}: {payment.amount} KSH to account "
        f"{payment.account_reference!r} was never delivered by the webhook; recovered from "
        f"M-Pesa's Pull Transactions list ({posting.outcome})",
        data={
            "trans_id": payment.trans_id,
            "amount": str(payment.amount),
            "account": payment.account_reference,
            "outcome": str(posting.outcome),
            "mpesa_time": payment.mpesa_time.isoformat() if payment.mpesa_time else None,
        },
        actor=actor,
    )


def pull_reconcile(
    *, source: PullSource, since: dt.datetime, until: dt.datetime, actor: str = ""
) -> PullRunResult:
    """Ask M-Pesa for [since, until], post every payment we do not know, record the run."""
    if connection.in_atomic_block:
        raise RuntimeError("pull_reconcile calls Daraja: it must not run inside a transaction")
    result = PullRunResult(since=since, until=until)
    try:
        rows = source.pull_transactions(since=since, until=until)
    except PullFailed as exc:
        result.error = str(exc)
        events.event_record(
            title=events.EventTitle.PULL_FAILED,
            level=events.EventLevel.ERROR,
            message=f"Pull Transactions query for {timezone.localtime(since):%Y-%m-%d %H:%M} "
            f"to {timezone.localtime(until):%Y-%m-%d %H:%M} failed: {exc}",
            data={"since": since.isoformat(), "until": until.isoformat(), "error": str(exc)},
            actor=actor,
        )
        _record_run(result, actor)
        return result
    result.listed = len(rows)
    payments: dict[str, IncomingPayment] = {}
    for index, row in enumerate(rows):
        try:
            payment = pull_row_parse(row)
        except RowRejected as exc:
            label = _row_label(row, index)
            result.skipped[label] = str(exc)
            events.event_record(
                title=events.EventTitle.PULL_ROW_SKIPPED,
                level=events.EventLevel.WARNING,
                message=f"Pull Transactions {label}: {exc}; not posted (check it and record "
                "it with `tuktuk payment record-missed` if it is a fare)",
                data={"row": _as_json(row), "why": str(exc)},
                actor=actor,
            )
            continue
        payments.setdefault(payment.trans_id, payment)  # listed twice (pages moved): once
    known = known_trans_ids(list(payments))
    result.known = len(known)
    for trans_id, payment in payments.items():
        if trans_id not in known:
            _recover(result, payment, actor)
    _record_run(result, actor)
    return result


def _record_run(result: PullRunResult, actor: str) -> None:
    level = events.EventLevel.INFO
    if result.recovered or result.skipped:
        level = events.EventLevel.WARNING
    if not result.ok:
        level = events.EventLevel.ERROR
    summary = (
        f"query failed: {result.error}"
        if result.error
        else f"{result.listed} listed, {result.known} known, {len(result.recovered)} recovered, "
        f"{len(result.failed)} failed, {len(result.skipped)} skipped"
    )
    events.event_record(
        title=events.EventTitle.PULL_RUN,
        level=level,
        message=f"{timezone.localtime(result.since):%Y-%m-%d %H:%M} to "
        f"{timezone.localtime(result.until):%Y-%m-%d %H:%M}: {summary}",
        data=result.as_dict(),
        actor=actor,
    )
