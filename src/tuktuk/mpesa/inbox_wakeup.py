"""How an idle posting engine learns that a confirmation was stored.

PostgreSQL: the engine LISTENs on INBOX_CHANNEL, and a trigger on the callback table (mpesa
migrations 0003 and 0006) notifies it, but only while some engine has announced that it
waits: a notifying transaction holds a cluster-wide lock until its commit is flushed, so a
notification per stored confirmation serialised the webhook's commits. A busy engine needs no
notification: it looks for more work after each pass anyway.

The race the protocol closes: a confirmation's transaction runs its trigger (no engine waits:
no notification), the engine then announces, looks once more (the confirmation is not yet
committed, so it sees nothing), and waits; the confirmation commits, and nobody wakes the
engine. So the trigger holds INBOX_BARRIER_KEY shared until its transaction ends, and the
engine, once its announcement is visible, takes the key exclusively (and lets it go at once):
that waits for every confirmation whose trigger ran before the announcement was visible to
commit, so the look that follows sees them. Every later trigger sees the announcement.

Elsewhere (SQLite, MariaDB) the engine polls every `poll_seconds`.
"""

from __future__ import annotations

import threading

from django.db import connection

# The channel the trigger notifies; an idle engine LISTENs on it.
INBOX_CHANNEL = "tuktuk_inbox"
# pg_advisory locks' key for the barrier above; mpesa migration 0006's trigger names it too.
INBOX_BARRIER_KEY = 7_240_315

# Stale announcements (an engine killed while waiting) are those whose backend is gone; the
# backend's start time tells a reused pid from its first owner.
_ANNOUNCE = """
WITH stale AS (
    DELETE FROM mpesa_engine_waiting AS waiting
    WHERE NOT EXISTS (
        SELECT 1 FROM pg_stat_activity AS backend
        WHERE backend.pid = waiting.pid AND backend.backend_start = waiting.backend_start
    )
)
INSERT INTO mpesa_engine_waiting (pid, backend_start)
SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()
ON CONFLICT (pid) DO UPDATE SET backend_start = EXCLUDED.backend_start
"""
_WITHDRAW = "DELETE FROM mpesa_engine_waiting WHERE pid = pg_backend_pid()"


class InboxWakeup:
    """An engine's side of the protocol. The engine loop: `prepare()` before each pass;
    after a pass that claimed something, `withdraw()`; after one that claimed nothing,
    `announce()`, and if it says so look once more before `wait()`. The wait never exceeds
    `idle_seconds`, so a stop request is seen within that."""

    def __init__(self, *, poll_seconds: float, idle_seconds: float = 1.0) -> None:
        self.poll_seconds = poll_seconds
        self.idle_seconds = idle_seconds
        self._listening_on: object = None
        self.announced = False

    @property
    def _listens(self) -> bool:
        return connection.vendor == "postgresql"

    def _listen(self) -> None:
        connection.ensure_connection()
        raw = connection.connection
        if raw is not self._listening_on:  # a new connection (first, or after a failure)
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {INBOX_CHANNEL}")
            self._listening_on = raw
            self.announced = False  # an announcement belonged to the old backend

    def prepare(self) -> None:
        """Called before each pass, so a confirmation stored during the pass wakes the next
        wait (PostgreSQL queues the notification on the listening connection)."""
        if self._listens:
            self._listen()

    def announce(self) -> bool:
        """Tell the storers this engine is about to wait. True when the caller must look for
        work once more before `wait()`: what was stored before the announcement notified
        nobody. In autocommit, like the engine between passes."""
        if not self._listens or self.announced:
            return False
        self._listen()
        with connection.cursor() as cursor:
            cursor.execute(_ANNOUNCE)
        self.announced = True
        self._barrier()
        return True

    def _barrier(self) -> None:
        """Until every confirmation that ran its trigger before the announcement commits."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [INBOX_BARRIER_KEY])
            cursor.execute("SELECT pg_advisory_unlock(%s)", [INBOX_BARRIER_KEY])

    def withdraw(self) -> None:
        """Busy again: stored confirmations need not notify for this engine."""
        if not self.announced:
            return
        self.announced = False
        if connection.connection is self._listening_on:
            with connection.cursor() as cursor:
                cursor.execute(_WITHDRAW)

    def wait(self, stop: threading.Event) -> None:
        if not self._listens:
            stop.wait(self.poll_seconds)
            return
        self._listen()
        raw = connection.connection
        # psycopg 3: blocks until a notification or the timeout; the queued ones are consumed.
        for _ in raw.notifies(timeout=self.idle_seconds, stop_after=1):
            pass
