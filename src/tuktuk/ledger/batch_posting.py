"""Posting many payments in one transaction (the posting engine's group commit).

The money rules are `services.posting_apply`, the same as one posting at a time; what changes is
the transaction around them. Every vehicle and driver row the batch needs is locked first, in a
fixed order (vehicles by primary key, then drivers by primary key), so two batches, or a batch
and a single posting (vehicle, then its driver), never wait on each other in a cycle. Under
those locks the batch reads at once what each posting would otherwise read one by one: who is
on duty on each vehicle (fleet.assignments.DutyRoster) and which TransIDs are already posted.
The caller commits once for all.

Two ways to run a batch:
- fast (the usual case): the payments are posted one after the other with no savepoints; if
  one cannot be posted (an earlier day must close first, a TransID inserted meanwhile, an
  error), BatchNeedsCare is raised and the caller rolls the batch back and runs it careful;
- careful: each payment in its own savepoint, so one that cannot be posted yet is deferred, or
  fails, without undoing the others.

One hot driver's fares in a batch thus share one lock acquisition and one commit, which is what
makes the engine faster than a request per fare.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from django.db import DatabaseError, IntegrityError, transaction

from tuktuk.core.db import is_retryable
from tuktuk.fleet.assignments import DutyRoster
from tuktuk.fleet.models import Driver, FleetSettings, Vehicle
from tuktuk.ledger import services
from tuktuk.ledger.day_close import DayCloseNotReady
from tuktuk.ledger.models import Transaction
from tuktuk.ledger.services import (
    IncomingPayment,
    PostingResult,
    Resolved,
    WithinPosting,
    account_resolve,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchItem:
    payment: IncomingPayment
    received: dt.datetime
    # Called inside the posting's transaction with its result (e.g. to mark the stored callback).
    within: WithinPosting | None = None


class ItemFate(StrEnum):
    POSTED = "posted"  # credited, or a duplicate/unmatched recorded: done
    DEFERRED = "deferred"  # an earlier business day must close first: try again later
    FAILED = "failed"  # an error that retrying now would not cure


@dataclass(frozen=True)
class ItemOutcome:
    fate: ItemFate
    result: PostingResult | None = None
    error: Exception | None = None


class BatchNeedsCare(Exception):
    """A fast batch met a payment it cannot post as it stands: roll back, run it careful."""


def _moment(item: BatchItem) -> dt.datetime:
    return item.payment.mpesa_time or item.received


def _rows_lock(items: Sequence[BatchItem]) -> dict[int, Resolved]:
    """Lock the vehicles, then the drivers, the batch needs, each in primary-key order; return
    each item's account resolved under those locks (keyed by position), as account_resolve
    would (a vehicle's driver on duty at the payment's time; else a driver's id or alias)."""
    canonical = [Vehicle.canonical_account(item.payment.account_reference) for item in items]
    # Vehicles first: a handover locks its vehicle before its drivers, a single posting too.
    vehicles = {
        account: (pk, status)
        for pk, account, status in Vehicle.objects.select_for_update()
        .filter(mpesa_account__in=set(canonical), is_active=True)
        .order_by("pk")
        .values_list("pk", "mpesa_account", "status")
    }
    moments = [_moment(item) for item in items]
    # Under the vehicle locks no handover can change who is on duty until we commit.
    roster = DutyRoster(
        vehicle_pks=[pk for pk, _ in vehicles.values()], start=min(moments), end=max(moments)
    )
    resolved: dict[int, Resolved] = {}
    for position, item in enumerate(items):
        account = canonical[position]
        if account in vehicles and not services.is_driver_id(account):
            pk, status = vehicles[account]
            on_duty = roster.on_duty(vehicle_pk=pk, moment=moments[position])
            resolved[position] = Resolved(pk, on_duty, False, status)
        else:  # a driver paying (id or alias), or nobody: the single posting's lookups
            reference = item.payment.account_reference
            resolved[position] = account_resolve(reference, at=moments[position])
    driver_pks = sorted({r.driver_pk for r in resolved.values() if r.driver_pk is not None})
    if driver_pks:
        list(
            Driver.objects.select_for_update()
            .filter(pk__in=driver_pks)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    return resolved


class _Posted:
    """The TransIDs already posted, read once under the batch's locks, and those posted by the
    batch itself (a re-sent delivery in the same batch must find its original)."""

    def __init__(self, items: Sequence[BatchItem]) -> None:
        trans_ids = {item.payment.trans_id for item in items}
        self.found = {t.trans_id: t for t in Transaction.objects.filter(trans_id__in=trans_ids)}

    def find(self, trans_id: str) -> Transaction | None:
        return self.found.get(trans_id)

    def add(self, result: PostingResult) -> None:
        self.found.setdefault(result.transaction.trans_id, result.transaction)


def _post_fast(
    item: BatchItem, *, source: str, fleet: FleetSettings, resolved: Resolved, posted: _Posted
) -> ItemOutcome:
    try:
        result = services.posting_apply(
            item.payment,
            source,
            item.within,
            item.received,
            fleet=fleet,
            resolved=resolved,
            existing_find=posted.find,
        )
    except DatabaseError as exc:
        if is_retryable(exc):
            raise
        raise BatchNeedsCare(str(exc)) from exc
    except Exception as exc:  # DayCloseNotReady or a bug: the careful run sorts them out
        raise BatchNeedsCare(str(exc)) from exc
    posted.add(result)
    services.posting_events_record(
        payment=item.payment, result=result, received=item.received, fleet=fleet
    )
    return ItemOutcome(ItemFate.POSTED, result)


def _post_careful(
    item: BatchItem, *, source: str, fleet: FleetSettings, resolved: Resolved, posted: _Posted
) -> ItemOutcome:
    try:
        with transaction.atomic():  # a savepoint: this item alone rolls back
            result = services.posting_apply(
                item.payment,
                source,
                item.within,
                item.received,
                fleet=fleet,
                resolved=resolved,
                existing_find=posted.find,
            )
    except DayCloseNotReady:
        return ItemOutcome(ItemFate.DEFERRED)
    except IntegrityError as exc:
        if is_retryable(exc):
            raise
        # The same TransID inserted meanwhile by another posting (two deliveries of one
        # unmatched payment, say): it is a duplicate now, as payment_post records it.
        existing = Transaction.objects.filter(trans_id=item.payment.trans_id).first()
        if existing is None:
            return ItemOutcome(ItemFate.FAILED, error=exc)
        with transaction.atomic():
            result = services.duplicate_record(existing, source, item.within)
    except DatabaseError as exc:
        if is_retryable(exc):
            raise  # a deadlock or lost serialisation: the whole batch rolls back and retries
        return ItemOutcome(ItemFate.FAILED, error=exc)
    except Exception as exc:
        logger.exception("posting a payment in a batch failed")
        return ItemOutcome(ItemFate.FAILED, error=exc)
    posted.add(result)
    services.posting_events_record(
        payment=item.payment, result=result, received=item.received, fleet=fleet
    )
    return ItemOutcome(ItemFate.POSTED, result)


def payments_post_batch(
    *,
    items: Sequence[BatchItem],
    careful: bool = False,
    source: str = services.TransactionSource.C2B,
) -> list[ItemOutcome]:
    """Post `items` (in their order) inside the caller's transaction, which must be open: lock
    every row they need in a fixed order, post each, return each one's outcome. Fast (no
    savepoints) unless `careful`; a fast batch raises BatchNeedsCare when it must be run
    careful. A retryable database error (deadlock, serialisation) propagates: roll back,
    retry all."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("payments_post_batch runs inside the caller's transaction")
    if not items:
        return []
    fleet = FleetSettings.load()
    resolved = _rows_lock(items)
    posted = _Posted(items)
    post = _post_careful if careful else _post_fast
    return [
        post(item, source=source, fleet=fleet, resolved=resolved[position], posted=posted)
        for position, item in enumerate(items)
    ]
