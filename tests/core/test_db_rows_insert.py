"""core.db.rows_insert (COPY on PostgreSQL, a multi-row INSERT elsewhere), row_insert (one row,
its id returned), on_live_connection and the any_of lookup: what they write and refuse is what
the ORM would, on every database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import (
    DatabaseError,
    IntegrityError,
    connection,
    transaction,
)
from django.forms.models import model_to_dict

from tests.support.clock import nairobi
from tests.support.db_sessions import session_id, session_kill
from tests.support.factories import make_driver
from tuktuk.core.db import instances_insert, on_live_connection, row_insert, rows_insert
from tuktuk.core.lookups import array_literal
from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import (
    DayClose,
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionSource,
    TransactionStatus,
    TransactionType,
)
from tuktuk.mpesa.models import Callback, CallbackKind

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


def missed_close(driver: Driver) -> dict[str, Any]:
    """A DayClose row: a missed day with nothing earned."""
    return {
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


def test_a_refused_row_raises_django_s_error_and_writes_nothing() -> None:
    driver = make_driver(1)
    close = missed_close(driver)
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
    # A text column: the strings as they are (a quote or a comma is no separator).
    Driver.objects.filter(pk=drivers[3].pk).update(name='O\'Neil, "Jr" {x}')
    names = {'O\'Neil, "Jr" {x}', drivers[0].name}
    found = Driver.objects.filter(name__any_of=names).values_list("pk", flat=True)
    assert set(found) == {drivers[0].pk, drivers[3].pk}
    assert not Driver.objects.filter(driver_id__any_of=set()).exists()
    assert not Driver.objects.filter(driver_id__any_of={"nobody"}).exists()


def test_array_literals() -> None:
    assert array_literal([1, 22]) == "{1,22}"
    assert array_literal([Decimal("-1.50"), Decimal("0.00")]) == "{-1.50,0.00}"
    assert array_literal([dt.date(2026, 3, 10), True, False]) == "{2026-03-10,t,f}"


def opening_entry(driver: Driver, amount: Decimal) -> dict[str, Any]:
    """A LedgerEntry row: the opening balance of 10 March 2026."""
    return {
        "driver_id": driver.pk,
        "business_day": dt.date(2026, 3, 10),
        "kind": EntryKind.OPENING.value,
        "amount": amount,
    }


def test_row_insert_returns_the_id_and_writes_what_create_would() -> None:
    at = nairobi(2026, 3, 10, 9)
    row = opening_entry(make_driver(1), Decimal("7.25"))
    with time_machine.travel(at, tick=False):
        first = row_insert(model=LedgerEntry, row=row)
        second = row_insert(model=LedgerEntry, row={**row, "amount": Decimal("-3.00")})
    assert second != first
    written = LedgerEntry.objects.get(pk=first)
    assert (written.amount, written.note, written.transaction_id, written.created_at) == (
        Decimal("7.25"),
        "",  # left out: the field's default
        None,
        at,  # auto_now_add
    )
    assert LedgerEntry.objects.get(pk=second).amount == Decimal("-3.00")


def test_row_insert_refused_raises_django_s_error_and_writes_nothing() -> None:
    row = missed_close(make_driver(1))
    row_insert(model=DayClose, row=row)
    with pytest.raises(IntegrityError), transaction.atomic():
        row_insert(model=DayClose, row=row)  # one close per driver and day
    assert DayClose.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_on_live_connection_runs_again_on_a_new_connection_once_the_old_one_died(
    vendor: str,
    connection_closed_after: None,
) -> None:
    if vendor == "sqlite":
        pytest.skip("SQLite has no server to drop the connection")
    driver = make_driver(1)
    row = {
        "driver_id": driver.pk,
        "business_day": dt.date(2026, 3, 10),
        "kind": "opening",
        "amount": Decimal("1.00"),
    }
    session_kill(session_id())
    tries: list[int] = []

    def insert() -> int:
        tries.append(1)
        return row_insert(model=LedgerEntry, row=row)

    pk = on_live_connection(insert)
    assert len(tries) == 2  # the first met the dead connection
    assert list(LedgerEntry.objects.values_list("pk", flat=True)) == [pk]
    # Inside a transaction there is no second try: the transaction died with its connection.
    # (PostgreSQL finds it dead at the insert; MariaDB already at the transaction's start.)
    session_kill(session_id())
    tries.clear()
    with pytest.raises(DatabaseError):
        with transaction.atomic():
            on_live_connection(insert)
    assert len(tries) <= 1
    connection.close()
    assert LedgerEntry.objects.count() == 1


def _payments(driver: Driver, *trans_ids: str) -> list[Transaction]:
    return [
        Transaction(
            trans_id=trans_id,
            transaction_type=TransactionType.PAYMENT,
            status=TransactionStatus.COMPLETED,
            source=TransactionSource.C2B,
            driver=driver,
            vehicle_id=driver.vehicle_id,
            account_reference="TUK001",
            amount=Decimal("150.00"),
            driver_share=Decimal("75.00"),
            target_contribution=Decimal("75.00"),
            payer_msisdn="254700000001",
            payer_name="Jane O'Neil",
            mpesa_time=nairobi(2026, 3, 10, 9, 59),
            received_at=nairobi(2026, 3, 10, 10),
            business_day=dt.date(2026, 3, 10),
        )
        for trans_id in trans_ids
    ]


def test_instances_insert_writes_what_bulk_create_writes_and_sets_the_keys() -> None:
    driver = make_driver(1)
    at = nairobi(2026, 3, 10, 10, 1)
    with time_machine.travel(at, tick=False):
        ours = _payments(driver, "INSA1", "INSA2", "INSA3")
        instances_insert(model=Transaction, instances=ours)
        theirs = _payments(driver, "BULK1", "BULK2", "BULK3")
        Transaction.objects.bulk_create(theirs)
    assert all(t.pk is not None and not t._state.adding for t in ours)
    assert len({t.pk for t in ours}) == 3
    for mine, django_s in zip(ours, theirs, strict=True):
        stored = Transaction.objects.get(pk=mine.pk)
        assert stored.trans_id == mine.trans_id and stored.created_at == at == mine.created_at
        skip = {"id", "trans_id"}
        assert {k: v for k, v in model_to_dict(stored).items() if k not in skip} == {
            k: v
            for k, v in model_to_dict(Transaction.objects.get(pk=django_s.pk)).items()
            if k not in skip
        }
    # The keys came from the table's own sequence: the next ordinary insert takes a new one.
    (later,) = _payments(driver, "LATER1")
    later.save()
    assert later.pk not in {t.pk for t in ours}
    assert Transaction.objects.count() == 7


def test_datetimes_are_written_as_the_orm_writes_them() -> None:
    """An aware datetime goes to PostgreSQL as it is (core.db skips the field's checks for
    it); a naive one still goes through the field, which takes it for Nairobi time and warns,
    as create() does; on the other databases every datetime goes through the field."""
    aware_nairobi = nairobi(2026, 3, 10, 9, 30)
    aware_utc = aware_nairobi.astimezone(dt.UTC)
    naive = dt.datetime(2026, 3, 10, 9, 30)  # the naive case itself
    row = {"kind": CallbackKind.C2B_CONFIRMATION, "body": "{}"}
    for moment in (aware_nairobi, aware_utc):
        pk = row_insert(model=Callback, row={**row, "received_at": moment})
        assert Callback.objects.get(pk=pk).received_at == aware_nairobi
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        pk = row_insert(model=Callback, row={**row, "received_at": naive})
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        by_orm = Callback.objects.create(**row, received_at=naive)
    assert Callback.objects.get(pk=pk).received_at == Callback.objects.get(pk=by_orm.pk).received_at
    assert Callback.objects.get(pk=pk).received_at == aware_nairobi


def test_left_out_defaults_are_fixed_but_auto_now_is_read_each_time() -> None:
    """The plan prepares a constant default once; auto_now(_add) is the time of each call."""
    row = opening_entry(make_driver(1), Decimal("1.00"))
    first_at, second_at = nairobi(2026, 3, 10, 9), nairobi(2026, 3, 10, 11)
    with time_machine.travel(first_at, tick=False):
        first = row_insert(model=LedgerEntry, row=row)
    with time_machine.travel(second_at, tick=False):
        second = row_insert(model=LedgerEntry, row=row)
        rows_insert(model=LedgerEntry, rows=[{**row, "amount": Decimal("2.00")}])
    third = LedgerEntry.objects.get(amount=Decimal("2.00"))
    written = [LedgerEntry.objects.get(pk=first), LedgerEntry.objects.get(pk=second), third]
    assert [e.created_at for e in written] == [first_at, second_at, second_at]
    assert {e.note for e in written} == {""}
