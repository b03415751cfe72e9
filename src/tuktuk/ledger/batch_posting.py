"""Posting many payments in one transaction (the posting engine's group commit).

The money rules are `services.posting_apply`, the same as one posting at a time; what changes is
the transaction around them. Every vehicle and driver row the batch needs is locked first, in a
fixed order (vehicles by primary key, then drivers by primary key), so two batches, or a batch
and a single posting (vehicle, then its driver), never wait on each other in a cycle. Then each
payment is posted in its own savepoint, so one that cannot post yet (an earlier day must close
first) or fails is set aside without undoing the others; the caller commits once for all.

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
    # Called inside the item's savepoint with its result (e.g. to mark the stored callback).
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


def _rows_lock(items: Sequence[BatchItem]) -> dict[int, Resolved]:
    """Lock the vehicles, then the drivers, the batch needs, each in primary-key order; return
    each item's account resolved under those locks (keyed by position)."""
    accounts = {Vehicle.canonical_account(item.payment.account_reference) for item in items}
    # Vehicles first: a handover locks its vehicle before its drivers, a single posting too.
    list(
        Vehicle.objects.select_for_update()
        .filter(mpesa_account__in=accounts, is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    resolved: dict[int, Resolved] = {}
    for position, item in enumerate(items):
        # Under the vehicle locks no handover can change who is on duty until we commit.
        resolved[position] = account_resolve(
            item.payment.account_reference, at=item.payment.mpesa_time or item.received
        )
    driver_pks = sorted({r.driver_pk for r in resolved.values() if r.driver_pk is not None})
    if driver_pks:
        list(
            Driver.objects.select_for_update()
            .filter(pk__in=driver_pks)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    return resolved


def _post_item(
    item: BatchItem, *, source: str, fleet: FleetSettings, resolved: Resolved
) -> ItemOutcome:
    try:
        with transaction.atomic():  # a savepoint: this item alone rolls back
            result = services.posting_apply(
                item.payment, source, item.within, item.received, fleet=fleet, resolved=resolved
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
    services.posting_events_record(
        payment=item.payment, result=result, received=item.received, fleet=fleet
    )
    return ItemOutcome(ItemFate.POSTED, result)


def payments_post_batch(
    *, items: Sequence[BatchItem], source: str = services.TransactionSource.C2B
) -> list[ItemOutcome]:
    """Post `items` (in their order) inside the caller's transaction, which must be open: lock
    every row they need in a fixed order, post each in a savepoint, return each one's outcome.
    A retryable database error (deadlock, serialisation) propagates: roll back, retry all."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("payments_post_batch runs inside the caller's transaction")
    if not items:
        return []
    fleet = FleetSettings.load()
    resolved = _rows_lock(items)
    return [
        _post_item(item, source=source, fleet=fleet, resolved=resolved[position])
        for position, item in enumerate(items)
    ]
