"""core.group_insert: rows that threads store at the same moment share one INSERT, each caller
gets its own row's key once committed, a failing statement fails its whole group and writes none
of it, and inside a transaction (or off PostgreSQL) every row is its own INSERT."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import DataError, connection, transaction
from django.test import override_settings

from tests.support.clock import nairobi
from tuktuk.core.group_insert import GroupInsert
from tuktuk.mpesa import callbacks
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState

# The clock pinned: the stores read it (received_at), as every confirmation's does.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("business_hours")]
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="groups are written on PostgreSQL only"
)
TIMEOUT = 30
RECEIVED = nairobi(2026, 3, 10, 9)


def _row(body: str, *, kind: str = CallbackKind.C2B_CONFIRMATION) -> dict[str, Any]:
    return {"kind": kind, "body": body, "received_at": RECEIVED}


class _Callers:
    """Threads that each store one row through `group`, with their answers."""

    def __init__(self, group: GroupInsert) -> None:
        self.group = group
        self.keys: dict[str, int] = {}
        self.errors: dict[str, BaseException] = {}
        self.threads: list[threading.Thread] = []

    def start(self, body: str, **row: Any) -> None:
        def store() -> None:
            try:
                self.keys[body] = self.group.insert(_row(body, **row))
            except BaseException as exc:
                self.errors[body] = exc
            finally:
                connection.close()

        thread = threading.Thread(target=store)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(TIMEOUT)
            assert not thread.is_alive()


@contextmanager
def inserts_held() -> Iterator[None]:
    """While open, every INSERT into the callbacks waits (a SHARE lock conflicts with it)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Callback._meta.db_table} IN SHARE MODE")
        yield


def _stored_bodies() -> dict[int, str]:
    return dict(Callback.objects.values_list("pk", "body"))


@on_postgresql
@pytest.mark.parametrize("max_rows", [64, 1], ids=["grouped", "control: one row a statement"])
def test_rows_stored_at_once_share_one_statement_each_caller_gets_its_own_key(
    max_rows: int,
) -> None:
    group = GroupInsert(model=Callback, max_rows=max_rows)
    callers = _Callers(group)
    with inserts_held():
        callers.start("first")  # leads, and waits for the lock with its own row alone
        assert group.wait_until(queued=0, leading=1, timeout=TIMEOUT)
        for n in range(5):
            callers.start(f"caller {n}")
        assert group.wait_until(queued=5, leading=1, timeout=TIMEOUT)  # behind the leader
    callers.join()
    assert not callers.errors
    # Each caller's key is its own row's, and every row was stored once.
    assert {pk: body for body, pk in callers.keys.items()} == _stored_bodies()
    assert len(callers.keys) == 6
    # The leader's row alone, then the five that waited in one statement; the control
    # writes them one by one.
    assert group.statements == (2 if max_rows == 64 else 6)
    assert callers.keys["first"] == min(callers.keys.values())


@on_postgresql
def test_a_failing_statement_fails_its_whole_group_and_writes_none_of_it() -> None:
    group = GroupInsert(model=Callback)
    callers = _Callers(group)
    with inserts_held():
        callers.start("leader")
        assert group.wait_until(queued=0, leading=1, timeout=TIMEOUT)
        callers.start("fine")
        callers.start("too long a kind", kind="k" * 40)  # over the column's 24 characters
        assert group.wait_until(queued=2, leading=1, timeout=TIMEOUT)
    callers.join()
    assert set(callers.keys) == {"leader"}
    assert set(callers.errors) == {"fine", "too long a kind"}
    assert all(isinstance(e, DataError) for e in callers.errors.values())
    assert list(_stored_bodies().values()) == ["leader"]
    # The next group is written as if nothing had happened.
    after = group.insert(_row("after"))
    assert _stored_bodies()[after] == "after"


def test_inside_a_transaction_the_row_is_the_transactions_own() -> None:
    group = GroupInsert(model=Callback)

    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        pk = group.insert(_row("inside"))
        assert _stored_bodies() == {pk: "inside"}
        raise Undo
    assert _stored_bodies() == {}  # rolled back with the caller's transaction
    assert group.statements == 0  # not grouped


def test_one_caller_alone_stores_its_row_on_every_database() -> None:
    group = GroupInsert(model=Callback)
    first, second = group.insert(_row("one")), group.insert(_row("two"))
    assert _stored_bodies() == {first: "one", second: "two"}
    # Grouped (one statement each here) on PostgreSQL; one INSERT each elsewhere.
    assert group.statements == (2 if connection.vendor == "postgresql" else 0)


@pytest.mark.parametrize("grouping", [True, False])
def test_the_confirmation_store_groups_only_when_the_setting_says_so(grouping: bool) -> None:
    before = callbacks._CONFIRMATIONS.statements
    with override_settings(STORE_GROUPING=grouping):
        pk = callbacks.confirmation_store(
            body=b'{"a": 1}', content_type="application/json", remote_addr="127.0.0.1"
        )
    stored = Callback.objects.get(pk=pk)
    assert (stored.kind, stored.state, stored.body) == (
        CallbackKind.C2B_CONFIRMATION,
        CallbackState.RECEIVED,
        '{"a": 1}',
    )
    grouped = grouping and connection.vendor == "postgresql"
    assert callbacks._CONFIRMATIONS.statements - before == (1 if grouped else 0)
