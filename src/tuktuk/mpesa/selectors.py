"""Reads on the callback inbox.

Duplicates report
-----------------
A TransID is a duplicate when more than one C2B confirmation callback carrying it is stored. It is
reported in the range of business days in which its first delivery was received (so a TransID
redelivered after midnight appears once, in one report, not split across two), with every
delivery: its time, state (processed / duplicate / failed / ...) and the driver of the
transaction if known. Default range: the last 7 business days up to the current one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Min
from django.utils import timezone

from tuktuk.core.dates import day_parse
from tuktuk.core.money import money
from tuktuk.fleet.models import FleetSettings
from tuktuk.ledger.business_day import day_close_moment, day_open_moment
from tuktuk.ledger.day_close import current_business_day
from tuktuk.ledger.models import Transaction
from tuktuk.ledger.statement import day_range_check
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState

DUPLICATES_DEFAULT_DAYS = 7


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
        day_range_check(first, last)
    fleet = FleetSettings.load()
    last = last or current_business_day(fleet)
    first = first or last - dt.timedelta(days=DUPLICATES_DEFAULT_DAYS - 1)
    day_range_check(first, last)
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
