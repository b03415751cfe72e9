"""Run a unit of work in one database transaction, retried on serialization failures/deadlocks."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, connection, transaction

logger = logging.getLogger(__name__)
T = TypeVar("T")

POSTGRES_RETRYABLE = {"40001", "40P01"}  # serialization_failure, deadlock_detected
# ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT, ER_CHECKREAD (record changed since last read)
MARIADB_RETRYABLE = {1213, 1205, 1020}


def is_retryable(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc
    if getattr(cause, "sqlstate", None) in POSTGRES_RETRYABLE:
        return True
    args = getattr(cause, "args", ())
    if args and isinstance(args[0], int) and args[0] in MARIADB_RETRYABLE:
        return True
    # SQLite: the busy timeout elapsed while another writer held the lock.
    return "database is locked" in str(cause)


def atomic_with_retry(work: Callable[[], T], *, attempts: int, label: str) -> T:
    """Run `work` in its own transaction; on a retryable error roll back and run it again.

    Inside an outer transaction a retry is impossible (the outer one is already doomed), so
    there it runs once and the error propagates.
    """
    if connection.in_atomic_block:
        with transaction.atomic():
            return work()
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return work()
        except DatabaseError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            logger.warning(
                "retrying after a transient database error",
                extra={"unit": label, "attempt": attempt, "error": str(exc)},
            )
            # Jittered backoff so the transactions that collided do not collide again.
            time.sleep(random.uniform(0, 0.01 * 2**attempt))  # noqa: S311
    raise AssertionError("unreachable")
