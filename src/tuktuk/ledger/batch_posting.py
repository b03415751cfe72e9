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
from decimal import Decimal
from enum import StrEnum

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q

from tuktuk.core.db import instances_insert, is_retryable, rows_insert
from tuktuk.core.money import ZERO
from tuktuk.fleet.assignments import DutyRoster
from tuktuk.fleet.balance import BalanceCredit, drivers_balance_credit
from tuktuk.fleet.models import OUT_OF_SERVICE, Driver, FleetSettings, Vehicle
from tuktuk.ledger import ports, services
from tuktuk.ledger.adjustments import paid_from_own_number
from tuktuk.ledger.business_day import business_day_of
from tuktuk.ledger.day_close import DayCloseNotReady
from tuktuk.ledger.models import (
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from tuktuk.ledger.ports import ShareToQueue
from tuktuk.ledger.services import (
    IncomingPayment,
    PostingOutcome,
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


def _rows_lock(items: Sequence[BatchItem]) -> tuple[dict[int, Resolved], dict[int, Driver]]:
    """Lock the vehicles, then the drivers, the batch needs, each in primary-key order; return
    each item's account resolved under those locks (keyed by position), as account_resolve
    would (a vehicle's driver on duty at the payment's time; else a driver's id or alias), and
    the locked driver rows."""
    canonical = [Vehicle.canonical_account(item.payment.account_reference) for item in items]
    # Vehicles first: a handover locks its vehicle before its drivers, a single posting too;
    # with them the vehicles of drivers paying the fleet (fleet.assignments.drivers_vehicles_lock
    # says why).
    accounts = set(canonical)
    paying = Driver.objects.filter(
        Q(driver_id__any_of=accounts) | Q(account_alias__any_of=accounts),
        vehicle__isnull=False,
    ).values_list("vehicle_id", flat=True)
    locked_vehicles = (
        Vehicle.objects.select_for_update()
        .filter(Q(mpesa_account__any_of=accounts, is_active=True) | Q(pk__any_of=set(paying)))
        .order_by("pk")
        .values_list("pk", "mpesa_account", "status", "is_active")
    )
    vehicles = {
        account: (pk, status)
        for pk, account, status, active in locked_vehicles
        if active and account in canonical
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
    drivers: dict[int, Driver] = {}
    if driver_pks:
        locked = (
            Driver.objects.select_for_update().filter(pk__any_of=set(driver_pks)).order_by("pk")
        )
        drivers = {driver.pk: driver for driver in locked}
    return resolved, drivers


class _Posted:
    """The TransIDs already posted, read once under the batch's locks, and those posted by the
    batch itself (a re-sent delivery in the same batch must find its original)."""

    def __init__(self, items: Sequence[BatchItem]) -> None:
        trans_ids = {item.payment.trans_id for item in items}
        self.found = {t.trans_id: t for t in Transaction.objects.filter(trans_id__any_of=trans_ids)}

    def find(self, trans_id: str) -> Transaction | None:
        return self.found.get(trans_id)

    def add(self, result: PostingResult) -> None:
        self.found.setdefault(result.transaction.trans_id, result.transaction)


class _FastLane:
    """The common fare, written in bulk: a passenger's payment to a vehicle whose driver is on
    duty, a new TransID, on the driver's open day (nothing to close first), not from the
    driver's own number (which might repay an adjustment), to a vehicle in service. Its split
    is `services.driver_split` from the balance as it stands after the batch's earlier fares
    (kept in memory: the rows are locked); its rows are the ones `posting_apply` writes
    (transaction, contribution entry, balance, share payout), inserted with one statement per
    table at `flush`. Everything else goes through `posting_apply` itself, after a flush, so
    the order of the postings is kept. The equivalence property test holds both to one
    ledger."""

    def __init__(self, *, drivers: dict[int, Driver], fleet: FleetSettings, source: str) -> None:
        self.drivers = drivers
        self.fleet = fleet
        self.source = source
        self.pending: list[tuple[Transaction, Driver, dt.date]] = []

    def takes(self, item: BatchItem, resolved: Resolved, posted: _Posted) -> bool:
        driver = self.drivers.get(resolved.driver_pk) if resolved.driver_pk else None
        return (
            driver is not None
            and driver.is_active
            and resolved.vehicle_pk is not None
            and not resolved.by_driver_id
            and resolved.vehicle_status not in OUT_OF_SERVICE
            and posted.find(item.payment.trans_id) is None
            and driver.balance_day == business_day_of(item.received, fleet=self.fleet)
            and not paid_from_own_number(driver=driver, payment=item.payment)
        )

    def post(self, item: BatchItem, resolved: Resolved) -> PostingResult:
        assert resolved.driver_pk is not None
        driver = self.drivers[resolved.driver_pk]
        day = driver.balance_day
        assert day is not None  # takes() checked it is the received day
        split = services.driver_split(driver=driver, fleet=self.fleet, amount=item.payment.amount)
        posted = Transaction(
            **services.transaction_fields(item.payment, self.source),
            status=TransactionStatus.COMPLETED,
            transaction_type=TransactionType.PAYMENT,
            driver=driver,
            vehicle_id=resolved.vehicle_pk,
            driver_share=split.driver_share,
            target_contribution=split.target_contribution,
            received_at=item.received,
            business_day=day,
        )
        driver.current_balance += split.target_contribution
        self.pending.append((posted, driver, day))
        return PostingResult(PostingOutcome.POSTED, posted)

    def flush(self) -> None:
        if not self.pending:
            return
        instances_insert(model=Transaction, instances=[posted for posted, _, _ in self.pending])
        rows_insert(
            model=LedgerEntry,
            rows=[
                {
                    "driver_id": driver.pk,
                    "business_day": day,
                    "kind": EntryKind.CONTRIBUTION.value,
                    "amount": posted.target_contribution,
                    "transaction_id": posted.pk,
                }
                for posted, driver, day in self.pending
            ],
        )
        credited: dict[int, tuple[Decimal, dt.date]] = {}
        for posted, driver, day in self.pending:
            so_far = credited.get(driver.pk, (ZERO, day))[0]
            credited[driver.pk] = (so_far + posted.target_contribution, day)
        drivers_balance_credit(
            credits=[
                BalanceCredit(
                    driver_pk=driver_pk,
                    target=self.drivers[driver_pk].effective_target(self.fleet),
                    amount=amount,
                    balance_day=day,
                )
                for driver_pk, (amount, day) in sorted(credited.items())
            ]
        )
        shares = [
            ShareToQueue(
                transaction=posted,
                driver=driver,
                amount=posted.driver_share,
                instant=driver.effective_instant_payout(self.fleet),
            )
            for posted, driver, _ in self.pending
            if posted.driver_share > 0
        ]
        if shares:
            ports.payout_outbox().shares_queue(shares=shares)
        self.pending.clear()

    def refresh(self, driver_pk: int | None) -> None:
        """After `posting_apply` wrote for this driver: its row as the database has it now."""
        if driver_pk is not None and driver_pk in self.drivers:
            self.drivers[driver_pk] = Driver.objects.get(pk=driver_pk)


def _apply(
    item: BatchItem, *, source: str, fleet: FleetSettings, resolved: Resolved, posted: _Posted
) -> PostingResult:
    return services.posting_apply(
        item.payment,
        source,
        item.within,
        item.received,
        fleet=fleet,
        resolved=resolved,
        existing_find=posted.find,
    )


def _post_fast(
    item: BatchItem, *, source: str, fleet: FleetSettings, resolved: Resolved, posted: _Posted
) -> ItemOutcome:
    try:
        result = _apply(item, source=source, fleet=fleet, resolved=resolved, posted=posted)
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
            result = _apply(item, source=source, fleet=fleet, resolved=resolved, posted=posted)
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
    resolved, drivers = _rows_lock(items)
    posted = _Posted(items)
    if careful:
        return [
            _post_careful(item, source=source, fleet=fleet, resolved=resolved[n], posted=posted)
            for n, item in enumerate(items)
        ]
    lane = _FastLane(drivers=drivers, fleet=fleet, source=source)
    outcomes: list[ItemOutcome] = []
    for n, item in enumerate(items):
        if lane.takes(item, resolved[n], posted):
            result = lane.post(item, resolved[n])
            posted.add(result)
            outcomes.append(ItemOutcome(ItemFate.POSTED, result))
            continue
        lane.flush()
        outcomes.append(
            _post_fast(item, source=source, fleet=fleet, resolved=resolved[n], posted=posted)
        )
        lane.refresh(resolved[n].driver_pk)
    lane.flush()
    return outcomes
