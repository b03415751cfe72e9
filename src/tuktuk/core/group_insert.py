"""Group insert: the rows that threads of one process store at the same moment, written by one
multi-row INSERT (one statement, one commit) instead of one each.

Why: the C2B confirmation's request stores its body in a transaction of its own, and on
PostgreSQL that single-row INSERT and its commit cost about three times as much per row as a
four-row one (pgbench on this schema: 11,200-12,900 single-row statements per second at
8 clients against 8,500-9,400 four-row ones, 34,000-37,600 rows). Under load, several request
threads store at once; here the first becomes the leader and writes its row, and whatever the
others queue meanwhile is written by the next leader in one statement. Each caller gets its own
row's primary key back only once the statement that wrote it has committed, so nothing is
acknowledged before it is durable, as before.

The leader hands over: after its statement it wakes the first waiting caller to lead the next
group, so no thread writes more than one group (with one statement in flight, a caller waits
for at most the group in flight and its own). A statement that fails fails every caller of its
group (none of its rows was written: one statement, autocommit); the next group is tried
afresh.

What it buys, measured (bench/results-c2b.md): with 32 senders and 16 request threads, 2,850
confirmations credited per second instead of about 2,050, PostgreSQL's share of the machine
down from 30 % to 22 %; with 8 senders, 3-5 % fewer, as callers wait for one another's
statements while the CPUs are not all busy. Hence a setting (TUKTUK_STORE_GROUPING), off by
default, and one statement in flight: two to six let the web server take the CPU the posting
engine needs, and the credit latency grew past its target.

Only on PostgreSQL, outside a transaction: inside one, the row must belong to the caller's
transaction; elsewhere every row is its own INSERT (MariaDB's and SQLite's engines serialise
their writers anyway, and the order of a multi-row RETURNING is what Django's own bulk_create
relies on for PostgreSQL only). Written by hand: no library offers this for Django's
connections (one per thread).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, models

from tuktuk.core.db import on_live_connection, row_insert, rows_insert_returning


@dataclass(eq=False)
class _Pending:
    row: Mapping[str, Any]
    woken: threading.Event = field(default_factory=threading.Event)
    # The group this caller writes, when it leads one (it is the group's first row).
    leads: list[_Pending] | None = None
    pk: int | None = None
    error: BaseException | None = None

    def result(self) -> int:
        if self.error is not None:
            raise self.error
        assert self.pk is not None
        return self.pk


class GroupInsert:
    """INSERTs rows of `model` (attnames, as core.db.row_insert takes them), grouping those
    that concurrent threads store at once: at most `in_flight` statements at a time (so that
    a few callers never wait for one another's round trips), each of at most `max_rows`."""

    def __init__(
        self, *, model: type[models.Model], max_rows: int = 64, in_flight: int = 1
    ) -> None:
        self.model = model
        self.max_rows = max_rows
        self.in_flight = in_flight
        self._changed = threading.Condition()
        self._queue: list[_Pending] = []  # waiting for a group; only while in_flight are busy
        self._leaders = 0
        self.statements = 0  # grouped INSERTs tried (for tests and benchmarks)

    def insert(self, row: Mapping[str, Any]) -> int:
        """Store `row` and return its primary key, once committed (or raise, nothing stored)."""
        if connection.vendor != "postgresql" or connection.in_atomic_block:
            return on_live_connection(lambda: row_insert(model=self.model, row=row))
        pending = _Pending(row)
        with self._changed:
            self._queue.append(pending)
            if self._leaders < self.in_flight:
                self._leaders += 1
                self._group_for_next_leader()
            self._changed.notify_all()
        if pending.leads is None:
            pending.woken.wait()  # its group written, or its turn to lead the next one
        if pending.leads is not None:
            self._write(pending.leads)
        return pending.result()

    def wait_until(self, *, queued: int, leading: int, timeout: float) -> bool:
        """For tests: block until at least `queued` rows wait for a group and `leading` groups
        are being written, or the timeout passes."""
        with self._changed:
            return self._changed.wait_for(
                lambda: len(self._queue) >= queued and self._leaders >= leading, timeout
            )

    def _group_for_next_leader(self) -> _Pending:
        """Take the oldest waiting rows as one group, led by its first (under the lock)."""
        group, self._queue = self._queue[: self.max_rows], self._queue[self.max_rows :]
        group[0].leads = group
        return group[0]

    def _write(self, group: list[_Pending]) -> None:
        try:
            pks = on_live_connection(
                lambda: rows_insert_returning(model=self.model, rows=[p.row for p in group])
            )
        except BaseException as exc:  # every caller of the group gets it, the leader too
            for pending in group:
                pending.error = exc
        else:
            for pending, pk in zip(group, pks, strict=True):
                pending.pk = pk
        with self._changed:
            self.statements += 1
            successor = self._group_for_next_leader() if self._queue else None
            if successor is None:
                self._leaders -= 1
            self._changed.notify_all()
        if successor is not None:
            successor.woken.set()  # first: the next statement starts while these answer
        for pending in group:
            pending.woken.set()
