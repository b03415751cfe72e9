"""Reads for the JSON API and the CLI: drivers with their vehicle, the event log, deposits,
deduction proposals and refunds, each shaped once (the CLI's --json prints the API's shape)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import (
    DecimalField,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
    prefetch_related_objects,
)
from django.db.models.functions import Coalesce

from tuktuk.core.errors import NotFound
from tuktuk.core.models import Event
from tuktuk.core.money import ZERO
from tuktuk.fleet.models import Driver
from tuktuk.fleet.selectors import driver_id_canonical
from tuktuk.ledger.deposits import deduction_proposals, deposit_show
from tuktuk.ledger.models import DeductionProposal, DepositEntry, DepositRefund

DRIVER_FIELDS = (
    "driver_id",
    "name",
    "mpesa_number",
    "vehicle_id",
    "mpesa_account",
    "current_balance",
    "left_to_target",
    "balance_day",
    "consecutive_misses",
    "flagged_for_review",
    "is_active",
    "status",
    "deposit_balance",
)


@dataclass(frozen=True)
class Page:
    count: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


_COMPUTED = ("vehicle_id", "mpesa_account", "status", "deposit_balance")


def deposit_balance_subquery(driver_pk: str = "pk") -> Coalesce:
    """The driver's deposit balance (its last entry's balance_after, or 0), for annotate() on
    a queryset whose `driver_pk` column is the driver's primary key."""
    last = DepositEntry.objects.filter(driver_id=OuterRef(driver_pk)).order_by("-seq")
    return Coalesce(
        Subquery(last.values("balance_after")[:1]),
        Value(ZERO),
        output_field=DecimalField(max_digits=14, decimal_places=2),
    )


def driver_status(row: Mapping[str, Any]) -> str:
    """Driver.status (the model's rule) for a values() row with is_active, terminated_at and
    archived_at."""
    return Driver(
        is_active=row["is_active"],
        terminated_at=row["terminated_at"],
        archived_at=row["archived_at"],
    ).status


def _driver_rows(drivers: QuerySet[Driver]) -> QuerySet[Driver, dict[str, Any]]:
    # values() with the vehicle columns joined and the deposit balance as a subquery: one
    # query per page, no lookup per row.
    return drivers.values(
        *[f for f in DRIVER_FIELDS if f not in _COMPUTED],
        "terminated_at",
        "archived_at",
        vehicle_code=F("vehicle__vehicle_id"),
        account=F("vehicle__mpesa_account"),
        deposit_now=deposit_balance_subquery(),
    )


def _driver_dict(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    # Driver.vehicle_id is the foreign key column; the API's vehicle_id is the vehicle's code.
    row["vehicle_id"] = row.pop("vehicle_code")
    row["mpesa_account"] = row.pop("account")
    row["deposit_balance"] = row.pop("deposit_now")
    row["status"] = driver_status(row)
    return {field: row[field] for field in DRIVER_FIELDS}


def driver_list(*, limit: int, offset: int) -> Page:
    drivers = Driver.objects.order_by("driver_id")
    rows = _driver_rows(drivers)[offset : offset + limit]
    return Page(
        count=drivers.count(),
        limit=limit,
        offset=offset,
        items=[_driver_dict(row) for row in rows],
    )


def driver_detail(*, driver_id: str) -> dict[str, Any]:
    row = _driver_rows(Driver.objects.filter(driver_id=driver_id_canonical(driver_id))).first()
    if row is None:
        raise NotFound(f"no driver {driver_id!r}")
    return _driver_dict(row)


def event_list(
    *,
    limit: int,
    offset: int,
    level: str | None = None,
    title: str | None = None,
    driver_id: str | None = None,
) -> Page:
    """Newest first (Event's default ordering), optionally filtered."""
    events = Event.objects.all()
    if level:
        events = events.filter(level=level)
    if title:
        events = events.filter(title__icontains=title.strip())
    if driver_id:
        events = events.filter(driver=driver_id_canonical(driver_id))
    rows = events.order_by("-created_at", "-id").values(
        "id", "created_at", "level", "title", "message", "driver", "data", "actor"
    )[offset : offset + limit]
    items = [{**row, "driver": row["driver"] or None} for row in rows]
    return Page(count=events.count(), limit=limit, offset=offset, items=items)


def database_ping() -> str:
    """A round trip to the database; returns its vendor, raises when it is unreachable."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


# --- deposits, deduction proposals, refunds --------------------------------------------------


def deposit_entry_dict(entry: DepositEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "created_at": entry.created_at,
        "kind": entry.kind,
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "reference": entry.reference,
        "actor": entry.actor,
        "trans_id": entry.transaction.trans_id if entry.transaction is not None else None,
    }


def deposit_detail(*, driver_id: str) -> dict[str, Any]:
    """A driver's deposit: settings, balance and every entry in order (ledger.deposit_show)."""
    view = deposit_show(driver_id=driver_id)
    prefetch_related_objects(view.entries, "transaction")  # one query, not one per entry
    return {
        "driver_id": view.driver_id,
        "name": view.name,
        "status": view.status,
        "required": view.required,
        "initial_amount": view.initial_amount,
        "allow_target_deduction": view.allow_target_deduction,
        "balance": view.balance,
        "entries": [deposit_entry_dict(entry) for entry in view.entries],
    }


def proposal_dict(proposal: DeductionProposal) -> dict[str, Any]:
    return {
        "id": proposal.pk,
        "driver_id": proposal.driver.driver_id,
        "driver_name": proposal.driver.name,
        "business_day": proposal.business_day,
        "shortfall": proposal.shortfall,
        "amount": proposal.amount,
        "approved_amount": proposal.approved_amount,
        "state": proposal.state,
        "decided_by": proposal.decided_by,
        "decided_at": proposal.decided_at,
        "reason": proposal.reason,
        "created_at": proposal.created_at,
    }


def proposal_list(*, state: str | None, limit: int, offset: int) -> Page:
    """Deduction proposals in `state` (None: every state), oldest missed day first."""
    proposals = deduction_proposals(state=state).order_by("business_day", "pk")
    return Page(
        count=proposals.count(),
        limit=limit,
        offset=offset,
        items=[proposal_dict(p) for p in proposals[offset : offset + limit]],
    )


def refund_dict(refund: DepositRefund) -> dict[str, Any]:
    payout = getattr(refund, "payout", None)  # the B2C transfer, once approved
    return {
        "id": refund.pk,
        "driver_id": refund.driver.driver_id,
        "driver_name": refund.driver.name,
        "state": refund.state,
        "deposit_balance": refund.deposit_balance,
        "target_debt": refund.target_debt,
        "adjustments_debt": refund.adjustments_debt,
        "amount": refund.amount,
        "requested_by": refund.requested_by,
        "reason": refund.reason,
        "created_at": refund.created_at,
        "decided_by": refund.decided_by,
        "decided_at": refund.decided_at,
        "payout_id": payout.pk if payout else None,
        "payout_state": payout.state if payout else None,
    }


def refund_paid(refund: DepositRefund) -> str:
    """What an approved refund pays, in words (CLI and admin messages)."""
    if refund.amount > 0:
        return f"{refund.amount} KSH queued for M-Pesa"
    return "nothing left to pay back"


def refund_get(*, refund_id: int) -> DepositRefund:
    refund = DepositRefund.objects.select_related("driver", "payout").filter(pk=refund_id).first()
    if refund is None:
        raise NotFound(f"no refund {refund_id}")
    return refund


def refund_list(*, state: str | None, limit: int, offset: int) -> Page:
    """Deposit refunds in `state` (None: every state), newest first."""
    refunds = DepositRefund.objects.select_related("driver", "payout").order_by("-pk")
    if state:
        refunds = refunds.filter(state=state)
    return Page(
        count=refunds.count(),
        limit=limit,
        offset=offset,
        items=[refund_dict(r) for r in refunds[offset : offset + limit]],
    )
