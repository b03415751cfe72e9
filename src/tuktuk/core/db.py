"""Run a unit of work in one database transaction, retried on serialization failures/deadlocks."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone

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


# Parameters per INSERT statement: under PostgreSQL's and MariaDB's 65,535 and SQLite's 32,766.
_PARAMETERS_PER_INSERT = 30_000


def rows_insert(*, model: type[models.Model], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT many rows of `model` without building model instances: what bulk_create does
    (no RETURNING), for a few microseconds of Python per row instead of about a hundred.
    Written by hand because bulk_create prepares every value of every instance through its
    field; here a field a row leaves out is prepared once for all rows (its default, or the
    time now for auto_now(_add)).

    Every row names the same fields, by attname (`driver_id`, not `driver`), with values the
    database driver takes as they are: Decimal already rounded to the field's places (money()),
    date, bool, int, str. Other kinds of field (a datetime, JSON) go through the field."""
    if not rows:
        return
    names = list(rows[0])
    fields = {field.attname: field for field in model._meta.concrete_fields}
    unknown = set(names) - set(fields)
    if unknown:
        raise ValueError(f"{model.__name__} has no field {sorted(unknown)}")
    plain: tuple[type[models.Field[Any, Any]], ...] = (
        models.DecimalField,
        models.DateField,
        models.BooleanField,
        models.IntegerField,
        models.CharField,
        models.TextField,
        models.ForeignKey,
    )
    prepared = [
        not isinstance(fields[name], plain) or isinstance(fields[name], models.DateTimeField)
        for name in names
    ]
    if connection.vendor == "sqlite":  # its driver adapts no date (Python 3.12 dropped it)
        prepared = [
            p or isinstance(fields[n], models.DateField)
            for p, n in zip(prepared, names, strict=True)
        ]
    constants: dict[str, Any] = {}
    now = timezone.now()
    for attname, field in fields.items():
        if attname in names or isinstance(field, models.AutoField):
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value: Any = now
        elif not field.has_default() and field.has_db_default():
            continue  # the database fills it
        else:
            value = field.get_default()
        constants[str(field.column)] = field.get_db_prep_save(value, connection)
    columns = [str(fields[name].column) for name in names] + list(constants)
    quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
    table = connection.ops.quote_name(model._meta.db_table)
    row_sql = f"({', '.join(['%s'] * len(columns))})"
    per_statement = max(1, _PARAMETERS_PER_INSERT // len(columns))

    def values_of(row: Mapping[str, Any]) -> list[Any]:
        return [
            fields[name].get_db_prep_save(row[name], connection) if prepare else row[name]
            for name, prepare in zip(names, prepared, strict=True)
        ]

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY: PostgreSQL's bulk path, several times faster than a multi-row INSERT here;
            # row triggers and constraints apply all the same.
            # wrap_database_errors: a refusal (a constraint, a trigger) raises Django's
            # IntegrityError or DatabaseError, as through the ORM, not psycopg's own.
            const = list(constants.values())
            copying = cursor.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN")
            with connection.wrap_database_errors, copying as copy:
                for row in rows:
                    copy.write_row(values_of(row) + const)
            return
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[Any] = []
            for row in chunk:
                params += values_of(row)
                params += constants.values()
            # Only placeholders and our own identifiers go into the text.
            cursor.execute(
                f"INSERT INTO {table} ({quoted}) VALUES {', '.join([row_sql] * len(chunk))}",  # noqa: S608
                params,
            )


def on_postgresql(sql: str) -> Callable[[Any, Any], None]:
    """A migration step (for RunPython) that runs `sql` on PostgreSQL and does nothing on the
    other databases: a trigger, a storage parameter they have no equivalent of."""

    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run
