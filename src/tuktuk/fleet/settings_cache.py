"""The fleet settings row, read once and kept for a few seconds by each process.

`FleetSettings.load()` is on every hot path: each C2B validation request, each posting, each
engine batch, the dashboard. The row changes a few times a year, so each process keeps a copy:

- in the process that changes it, the copy is dropped when the change commits (the model's
  post_save/post_delete signals and its queryset's `update()` call `changed`), so the next load
  there reads the new row;
- every other process (web workers, engines, the worker, on any machine) reads the row again
  at most `TUKTUK_SETTINGS_CACHE_SECONDS` after it loaded it (default 5; 0: no cache). Nothing
  tells them about a change: the database is the only thing they share, and asking it on every
  load is exactly the cost this saves. A change written around the ORM (SQL, another
  deployment) reaches this process the same way.

The expiry runs on time.monotonic: the wall clock can be stepped (NTP, an operator) and is
pinned by the tests (time-machine mocks time.time and datetime, not time.monotonic), and
neither may keep a stale copy alive or expire a fresh one early.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db import connections, transaction
from django.db.models import Model

M = TypeVar("M", bound=Model)

# Tests replace this to move the cache's time deterministically.
clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class _Entry(Generic[M]):
    row: M
    loaded_at: float
    expires_at: float


class RowCache(Generic[M]):
    """One model instance, shared by the threads of a process, handed out as copies."""

    def __init__(self) -> None:
        self._entry: _Entry[M] | None = None
        # Bumped by every invalidation: a load that read the database before a change
        # committed must not store what it read after the change dropped the entry.
        self._generation = 0
        self._store_lock = threading.Lock()
        # Per thread, like Django's connections: the aliases whose open transaction changed
        # the row and has not committed yet.
        self._local = threading.local()

    def get(self, fetch: Callable[[], M], *, seconds: float) -> M:
        """The cached row (a copy), or `fetch()` when there is none, it is older than `seconds`,
        or this thread's own transaction has changed the row."""
        if seconds <= 0 or self._changed_in_open_transaction():
            return fetch()
        now = clock()
        entry = self._entry
        # now < loaded_at: a clock that went backwards (only a test's replaced clock can)
        # must not keep an entry for ever.
        if entry is not None and entry.loaded_at <= now < entry.expires_at:
            return copy.copy(entry.row)
        # A change that commits (and invalidates) while fetch() runs may be missing from what
        # it returns, so that is then not kept. One committed before this line is in it: each
        # statement reads the latest commit (READ COMMITTED, as PostgreSQL and MariaDB run
        # here; on SQLite a transaction of ours holds the write lock from its BEGIN, so
        # nothing commits while it runs).
        generation = self._generation
        row = fetch()
        with self._store_lock:
            # fetch() may itself have created the row (get_or_create), which changes it.
            if self._generation == generation and not self._changed_in_open_transaction():
                # Timed from before the read: the copy is never older than `seconds`.
                self._entry = _Entry(copy.copy(row), loaded_at=now, expires_at=now + seconds)
        return row

    def invalidate(self) -> None:
        with self._store_lock:
            self._entry = None
            self._generation += 1

    def changed(self, *, using: str) -> None:
        """The row was written on the connection `using`: drop the copy when that commits.

        Not before: until the commit every other connection still reads the old row, which
        is what the cache holds, and a load in between that stored the new one would serve a
        change that may yet be rolled back. Meanwhile the writing thread must see its own
        change (as it would without a cache) and must not store it, so its loads skip the
        cache until its transaction ends. A rollback runs no on_commit callback: nothing
        was stored, and the mark is dropped once that connection is out of its transaction.
        Outside a transaction (autocommit) the write has committed already and on_commit
        runs the invalidation at once.
        """
        if connections[using].in_atomic_block:
            self._pending().add(using)
        transaction.on_commit(lambda: self._committed(using), using=using)

    def _committed(self, using: str) -> None:
        self._pending().discard(using)
        self.invalidate()

    def _pending(self) -> set[str]:
        pending: set[str] | None = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = set()
        return pending

    def _changed_in_open_transaction(self) -> bool:
        pending: set[str] | None = getattr(self._local, "pending", None)
        if not pending:
            return False
        # A mark whose transaction has ended without committing (rolled back) is stale. One
        # rolled back inside an outer transaction stays until the outer one ends: the loads
        # in between read the database, which is correct, only slower.
        for alias in list(pending):
            if not connections[alias].in_atomic_block:
                pending.discard(alias)
        return bool(pending)
