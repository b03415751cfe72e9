"""Run a unit of work in one database transaction, retried on serialization failures/deadlocks."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    models,
    transaction,
)
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


@dataclass(frozen=True)
class _InsertPlan:
    """How to INSERT rows that name these fields of a model, worked out once: the table, the
    columns (those named, then those left out), which named values go through their field
    (the drivers take the others as they are), and the fields left out for their defaults."""

    table: str
    names: tuple[str, ...]
    fields: list[models.Field[Any, Any]]
    prepared: list[int]  # _PLAIN, _THROUGH_FIELD or _AWARE_AS_IS, for each named field
    left_out: list[models.Field[Any, Any]]
    # The left-out values that are the same for every row and every call (a constant default,
    # prepared once), or _EACH_TIME (a callable default, auto_now).
    left_out_fixed: tuple[Any, ...]
    columns: str  # quoted, comma-separated
    placeholders: str  # "(%s, …)", one row's


# Fields whose values (Decimal already rounded, date, bool, int, str) the drivers take as they
# are; a datetime (time zones), JSON and the rest go through their field.
_PLAIN_FIELDS: tuple[type[models.Field[Any, Any]], ...] = (
    models.DecimalField,
    models.DateField,
    models.BooleanField,
    models.IntegerField,
    models.CharField,
    models.TextField,
    models.ForeignKey,
)


# How a named value is handed to the driver.
_PLAIN = 0  # as it is
_THROUGH_FIELD = 1  # field.get_db_prep_save
# A DateTimeField on PostgreSQL: an aware datetime as it is (what get_db_prep_save would return
# for it there, after a few microseconds of checks), anything else through the field.
_AWARE_AS_IS = 2
_EACH_TIME = object()


def _how_prepared(field: models.Field[Any, Any], vendor: str) -> int:
    if isinstance(field, models.DateTimeField):
        return _AWARE_AS_IS if vendor == "postgresql" else _THROUGH_FIELD
    if not isinstance(field, _PLAIN_FIELDS):
        return _THROUGH_FIELD
    # SQLite's driver adapts no date (Python 3.12 dropped it).
    return _THROUGH_FIELD if vendor == "sqlite" and isinstance(field, models.DateField) else _PLAIN


def _stamped(field: models.Field[Any, Any]) -> bool:
    """auto_now or auto_now_add: the time now, on every insert."""
    return bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))


def _fixed_value(field: models.Field[Any, Any]) -> Any:
    if _stamped(field) or callable(field.default):
        return _EACH_TIME
    return field.get_db_prep_save(field.get_default(), connection)


@functools.lru_cache(maxsize=64)
def _insert_plan(model: type[models.Model], names: tuple[str, ...], vendor: str) -> _InsertPlan:
    by_attname = {field.attname: field for field in model._meta.concrete_fields}
    unknown = set(names) - set(by_attname)
    if unknown:
        raise ValueError(f"{model.__name__} has no field {sorted(unknown)}")
    fields = [by_attname[name] for name in names]
    prepared = [_how_prepared(field, vendor) for field in fields]
    left_out = [
        field
        for field in model._meta.concrete_fields
        if field.attname not in names
        and not isinstance(field, models.AutoField)
        # A field with only a database default: the database fills it.
        and (field.has_default() or not field.has_db_default())
    ]
    columns = [str(field.column) for field in (*fields, *left_out)]
    return _InsertPlan(
        table=connection.ops.quote_name(model._meta.db_table),
        names=names,
        fields=fields,
        prepared=prepared,
        left_out=left_out,
        left_out_fixed=tuple(_fixed_value(field) for field in left_out),
        columns=", ".join(connection.ops.quote_name(column) for column in columns),
        placeholders=f"({', '.join(['%s'] * len(columns))})",
    )


def _value(value: Any, field: models.Field[Any, Any], how: int) -> Any:
    if how == _PLAIN or (
        how == _AWARE_AS_IS and isinstance(value, dt.datetime) and value.tzinfo is not None
    ):
        return value
    return field.get_db_prep_save(value, connection)


def _values(plan: _InsertPlan, row: Mapping[str, Any]) -> list[Any]:
    return [
        _value(row[name], field, how)
        for name, field, how in zip(plan.names, plan.fields, plan.prepared, strict=True)
    ]


def _left_out_values(plan: _InsertPlan) -> list[Any]:
    """The values of the fields the rows leave out, prepared: the default, or the time now for
    auto_now(_add); the constant ones as the plan prepared them."""
    if not any(fixed is _EACH_TIME for fixed in plan.left_out_fixed):
        return list(plan.left_out_fixed)
    now = timezone.now()
    return [
        fixed
        if fixed is not _EACH_TIME
        else field.get_db_prep_save(now if _stamped(field) else field.get_default(), connection)
        for field, fixed in zip(plan.left_out, plan.left_out_fixed, strict=True)
    ]


def _multi_row_insert(
    plan: _InsertPlan, rows: Sequence[Mapping[str, Any]], const: list[Any]
) -> tuple[str, list[Any]]:
    """One INSERT of `rows` with the plan's columns: its text and parameters, each row's
    values followed by `const` (the left-out values, prepared once for all rows)."""
    params: list[Any] = []
    for row in rows:
        params += _values(plan, row)
        params += const
    # Only placeholders and our own identifiers go into the text.
    values = ", ".join([plan.placeholders] * len(rows))
    return f"INSERT INTO {plan.table} ({plan.columns}) VALUES {values}", params  # noqa: S608


def row_insert(*, model: type[models.Model], row: Mapping[str, Any]) -> int:
    """INSERT one row of `model` and return its primary key: what Model.objects.create() does
    for the statement, without the ORM building and compiling it on every call (about 0.1 ms
    of CPU, a quarter of a webhook request's). `row` names fields by attname, as for
    rows_insert, and the fields it leaves out get their defaults."""
    plan = _insert_plan(model, tuple(row), connection.vendor)
    statement, params = _multi_row_insert(plan, [row], _left_out_values(plan))
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:
            pk = connection.ops.quote_name(str(model._meta.pk.column))
            cursor.execute(f"{statement} RETURNING {pk}", params)
            return int(cursor.fetchone()[0])
        cursor.execute(statement, params)  # MySQL: no RETURNING, the id from the driver
        return int(cursor.lastrowid)


def rows_insert_returning(
    *, model: type[models.Model], rows: Sequence[Mapping[str, Any]]
) -> list[int]:
    """INSERT `rows` (named as row_insert takes them) in one statement and return their primary
    keys in the rows' order, on PostgreSQL: its RETURNING gives the rows of a multi-row VALUES
    in their order, which Django's bulk_create relies on too. For core.group_insert."""
    if connection.vendor != "postgresql":
        raise NotImplementedError("rows_insert_returning is for PostgreSQL")
    if not rows:
        return []
    plan = _insert_plan(model, tuple(rows[0]), connection.vendor)
    statement, params = _multi_row_insert(plan, rows, _left_out_values(plan))
    pk = connection.ops.quote_name(str(model._meta.pk.column))
    with connection.cursor() as cursor:
        cursor.execute(f"{statement} RETURNING {pk}", params)
        return [int(key) for (key,) in cursor.fetchall()]


def rows_insert(*, model: type[models.Model], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT many rows of `model` without building model instances: what bulk_create does
    (no RETURNING), for a few microseconds of Python per row instead of about a hundred.
    Written by hand because bulk_create prepares every value of every instance through its
    field; here a field the rows leave out is prepared once for all rows (its default, or the
    time now for auto_now(_add)).

    Every row names the same fields by attname (`driver_id`, not `driver`), with values the
    database driver takes as they are: Decimal already rounded to the field's places
    (money()), date, bool, int, str. Other kinds of field (a datetime, JSON) go through the
    field."""
    if not rows:
        return
    plan = _insert_plan(model, tuple(rows[0]), connection.vendor)
    const = _left_out_values(plan)
    per_statement = max(1, _PARAMETERS_PER_INSERT // (len(plan.fields) + len(const)))

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY: PostgreSQL's bulk path, several times faster than a multi-row INSERT here;
            # row triggers and constraints apply all the same.
            # wrap_database_errors: a refusal (a constraint, a trigger) raises Django's
            # IntegrityError or DatabaseError, as through the ORM, not psycopg's own.
            copying = cursor.cursor.copy(f"COPY {plan.table} ({plan.columns}) FROM STDIN")
            with connection.wrap_database_errors, copying as copy:
                for row in rows:
                    copy.write_row(_values(plan, row) + const)
            return
        for start in range(0, len(rows), per_statement):
            cursor.execute(*_multi_row_insert(plan, rows[start : start + per_statement], const))


def instances_insert(*, model: type[models.Model], instances: Sequence[models.Model]) -> None:
    """bulk_create(instances), their primary keys and auto_now(_add) fields set on them, for a
    fraction of the CPU on PostgreSQL: the keys drawn from the table's own sequence in one
    statement, the rows written with COPY (rows_insert), instead of Django preparing every
    value of every row through its field (about 0.07 ms per posting in the engine's batch).
    Elsewhere bulk_create itself. The instances' values must be what rows_insert takes
    (Decimal already rounded to the field's places)."""
    if not instances:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(instances)
        return
    pk = model._meta.pk
    assert pk is not None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, pk.column, len(instances)],
        )
        keys = [int(row[0]) for row in cursor.fetchall()]
    now = timezone.now()
    stamped = [field.attname for field in model._meta.concrete_fields if _stamped(field)]
    for instance, key in zip(instances, keys, strict=True):
        instance.pk = key
        for attname in stamped:
            setattr(instance, attname, now)
        instance._state.adding = False
        instance._state.db = connection.alias
    names = [field.attname for field in model._meta.concrete_fields]
    rows_insert(
        model=model,
        rows=[{name: getattr(instance, name) for name in names} for instance in instances],
    )


def health_check_skip() -> None:
    """Spare this request CONN_HEALTH_CHECKS' "SELECT 1" (one round trip on the webhook's hot
    path) where its first statement goes through on_live_connection, which replaces a dead
    connection itself. Call after request_started, which clears the mark."""
    connection.health_check_done = True  # type: ignore[attr-defined]  # not in the stubs


def on_live_connection(statement: Callable[[], T]) -> T:
    """Run one autocommit statement; if the persistent connection it ran on turns out dead (the
    database restarted, a failover), reconnect and run it once more. This is what the "SELECT 1"
    of CONN_HEALTH_CHECKS does before every request, paid only when a connection has died: the
    webhook lane skips that check for the views whose first statement goes through here.

    Run twice only if the first try failed, so a statement that did commit before its
    connection broke may be written twice: only for what is safe to store again (a callback
    body, which M-Pesa itself may deliver twice)."""
    if connection.in_atomic_block:
        return statement()  # a transaction cannot move to another connection half way
    reused = connection.connection is not None
    try:
        return statement()
    except (OperationalError, InterfaceError):
        if not reused:
            raise
        logger.warning("a persistent database connection was dead: reconnecting once")
        connection.close()
        return statement()


def on_postgresql(sql: str) -> Callable[[Any, Any], None]:
    """A migration step (for RunPython) that runs `sql` on PostgreSQL and does nothing on the
    other databases: a trigger, a storage parameter they have no equivalent of."""

    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run
