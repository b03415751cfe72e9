"""An idle posting engine is woken by LISTEN/NOTIFY, and a stored confirmation notifies only
while some engine has announced that it waits (mpesa.inbox_wakeup): no confirmation stored
around the moment an engine goes idle is left unnoticed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction

from tests.support.engines import store
from tests.support.payouts import wait_until
from tuktuk.mpesa.inbox_wakeup import INBOX_BARRIER_KEY, INBOX_CHANNEL, InboxWakeup
from tuktuk.mpesa.posting_engine import engine_pass

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="LISTEN/NOTIFY is PostgreSQL's; elsewhere an idle engine polls",
)


class Observer:
    """Another session LISTENing on the inbox channel, as an idle engine does."""

    def __init__(self) -> None:
        self.raw: Any = connection.get_new_connection(connection.get_connection_params())
        self.raw.autocommit = True
        self.received: list[str] = []
        self.raw.add_notify_handler(lambda notify: self.received.append(notify.channel))
        self.raw.execute(f"LISTEN {INBOX_CHANNEL}")

    def notifications(self) -> int:
        """How many arrived so far. A round trip first: a notification committed before it
        reaches this session before the answer does."""
        self.raw.execute("SELECT 1")
        return len(self.received)


@pytest.fixture
def observer(transactional_db: None) -> Iterator[Observer]:
    # Not a Django model: the test database's flush between tests leaves it alone.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM mpesa_engine_waiting")
    watching = Observer()
    try:
        yield watching
    finally:
        watching.raw.close()


def waiting_engines() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM mpesa_engine_waiting")
        return int(cursor.fetchone()[0])


def test_the_trigger_takes_the_engines_barrier_key(transactional_db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'mpesa_callback_inbox_notify'")
        (source,) = cursor.fetchone()
    assert f"pg_advisory_xact_lock_shared({INBOX_BARRIER_KEY})" in source


def test_a_stored_confirmation_notifies_only_while_an_engine_waits(observer: Observer) -> None:
    wakeup = InboxWakeup(poll_seconds=0.05)
    store("QWK0000001", "100")
    assert observer.notifications() == 0  # no engine waits: the commit notifies nobody

    assert wakeup.announce() is True  # the caller must look once more before waiting
    assert wakeup.announce() is False  # already announced
    store("QWK0000002", "100")
    assert observer.notifications() == 1

    wakeup.withdraw()
    assert waiting_engines() == 0
    store("QWK0000003", "100")
    assert observer.notifications() == 1


def test_an_announcement_of_a_backend_that_is_gone_is_cleared(observer: Observer) -> None:
    # An engine killed while it waited leaves its row; a live engine's announcement clears it.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO mpesa_engine_waiting (pid, backend_start) VALUES (%s, now())",
            [2**31 - 1],
        )
    store("QWK0000001", "100")
    assert observer.notifications() == 1  # the stale row still makes every commit notify

    wakeup = InboxWakeup(poll_seconds=0.05)
    wakeup.announce()
    wakeup.withdraw()
    assert waiting_engines() == 0
    store("QWK0000002", "100")
    assert observer.notifications() == 1


def advisory_lock_awaited() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return int(cursor.fetchone()[0]) > 0


@pytest.mark.parametrize("barrier", [True, False], ids=["barrier", "control-without-barrier"])
def test_a_confirmation_committing_as_the_engine_goes_idle_is_not_missed(
    observer: Observer, monkeypatch: pytest.MonkeyPatch, barrier: bool
) -> None:
    """The confirmation's trigger runs before the engine announces (so it does not notify),
    and it commits after. With the barrier, the engine's announcement waits for that commit
    and its last look finds the confirmation; without it (the control), the engine's last look
    finds nothing and no notification comes: it would sleep with work waiting."""
    if not barrier:
        monkeypatch.setattr(InboxWakeup, "_barrier", lambda self: None)
    stored, release, looked = threading.Event(), threading.Event(), threading.Event()
    claimed: list[int] = []
    errors: list[BaseException] = []

    def storer() -> None:
        try:
            with transaction.atomic():
                store("QWK0000009", "100")
                stored.set()
                assert release.wait(timeout=30)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    def engine() -> None:
        wakeup = InboxWakeup(poll_seconds=0.05)
        try:
            assert wakeup.announce() is True
            claimed.append(engine_pass().claimed)  # the last look before waiting
            looked.set()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()  # its announcement stays, stale; the next fixture clears it

    storing = threading.Thread(target=storer)
    storing.start()
    assert stored.wait(timeout=30)
    going_idle = threading.Thread(target=engine)
    going_idle.start()
    if barrier:
        wait_until(advisory_lock_awaited, timeout=30, what="the announcement to wait")
        assert not looked.is_set()
    else:
        assert looked.wait(timeout=30)
    release.set()
    storing.join(timeout=30)
    going_idle.join(timeout=30)
    assert not errors, errors
    if barrier:
        assert claimed == [1]
    else:
        assert claimed == [0]
        assert observer.notifications() == 0  # the wakeup is lost
