"""core.db.rows_insert (COPY on PostgreSQL, a multi-row INSERT elsewhere) and the any_of lookup:
what they write and refuse is what the ORM would, on every database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError, transaction

from tests.support.clock import nairobi
from tests.support.factories import make_driver
from tuktuk.core.db import rows_insert
from tuktuk.core.lookups import array_literal
from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import DayClose, EntryKind, LedgerEntry

pytestmark = pytest.mark.django_db


def test_rows_are_written_with_their_values_and_the_defaults_of_the_rest() -> None:
    at = nairobi(2026, 3, 10, 9)
    with time_machine.travel(at, tick=False):
        one, two = make_driver(1), make_driver(2)
        rows_insert(
            model=LedgerEntry,
            rows=[
                {
                    "driver_id": driver.pk,
                    "business_day": dt.date(2026, 3, 10),
                    "kind": EntryKind.OPENING.value,
                    "amount": amount,
                }
                for driver, amount in ((one, Decimal("-12.50")), (two, Decimal("0.00")))
            ],
        )
    written = {e.driver_id: e for e in LedgerEntry.objects.all()}
    assert {pk: e.amount for pk, e in written.items()} == {
        one.pk: Decimal("-12.50"),
        two.pk: Decimal("0.00"),
    }
    first = written[one.pk]
    assert (first.business_day, first.kind, first.note, first.transaction_id) == (
        dt.date(2026, 3, 10),
        EntryKind.OPENING,
        "",  # the field's default
        None,
    )
    assert first.created_at == at  # auto_now_add: the time now


def test_a_refused_row_raises_django_s_error_and_writes_nothing() -> None:
    driver = make_driver(1)
    close = {
        "driver_id": driver.pk,
        "business_day": dt.date(2026, 3, 10),
        "closing_balance": Decimal("0.00"),
        "cached_balance": Decimal("0.00"),
        "target": Decimal("3000.00"),
        "target_met": False,
        "sharing": True,
        "carried_over": Decimal("-3000.00"),
        "consecutive_misses": 1,
        "flagged_for_review": False,
        "paused": False,
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        rows_insert(model=DayClose, rows=[close, close])  # the same day twice: unique
    assert not DayClose.objects.exists()
    with pytest.raises(IntegrityError), transaction.atomic():
        rows_insert(model=DayClose, rows=[close | {"carried_over": Decimal("5.00")}])  # CHECK
    with pytest.raises(ValueError, match="no field"):
        rows_insert(model=DayClose, rows=[close | {"driver": driver}])


def test_any_of_finds_the_keys_given_and_nothing_for_none() -> None:
    drivers = [make_driver(n) for n in range(1, 5)]
    wanted = {drivers[0].pk, drivers[2].pk}
    assert set(Driver.objects.filter(pk__any_of=wanted).values_list("pk", flat=True)) == wanted
    assert not Driver.objects.filter(pk__any_of=set()).exists()
    assert Driver.objects.filter(vehicle__any_of={drivers[1].vehicle_id}).get() == drivers[1]


def test_array_literals() -> None:
    assert array_literal([1, 22]) == "{1,22}"
    assert array_literal([Decimal("-1.50"), Decimal("0.00")]) == "{-1.50,0.00}"
    assert array_literal([dt.date(2026, 3, 10), True, False]) == "{2026-03-10,t,f}"
