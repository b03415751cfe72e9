"""The one writer of a driver's cached `current_balance` and `left_to_target`.

`left_to_target = max(0, target − current_balance)` is computed here and nowhere else, always
in the database, so a concurrent posting is never overwritten by a value read earlier. The
ledger calls these under the driver's row lock; the fleet calls the refresh when a target
changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Case, F, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import Greatest
from django.utils import timezone

from tuktuk.core.lookups import array_literal
from tuktuk.core.money import ZERO, MoneyField
from tuktuk.fleet.models import Driver, FleetSettings


def _left_to_target(target: Combinable, balance: Combinable) -> Greatest:
    return Greatest(Value(ZERO, output_field=MoneyField()), target - balance)


def _money(value: Decimal) -> Value:
    return Value(value, output_field=MoneyField())


def driver_balance_credit(*, driver_pk: int, target: Decimal, amount: Decimal, **also: Any) -> None:
    """Move the balance by `amount` (F() expressions: concurrent credits all count).

    MariaDB evaluates SET assignments left to right and later ones see earlier results, so
    left_to_target comes first and is computed from the balance before this credit.
    """
    Driver.objects.filter(pk=driver_pk).update(
        left_to_target=_left_to_target(_money(target - amount), F("current_balance")),
        current_balance=F("current_balance") + amount,
        updated_at=timezone.now(),
        **also,
    )


_DECIMAL = "DECIMAL(14, 2)"


@dataclass(frozen=True)
class BalanceCredit:
    driver_pk: int
    target: Decimal
    amount: Decimal
    balance_day: dt.date


def _by_pk(pks: Sequence[int], values: Sequence[Any], *, cast: str = "") -> tuple[str, list[Any]]:
    """`(CASE id WHEN pk THEN value ... END)` and its parameters: one value per row."""
    then = f"CAST(%s AS {cast})" if cast else "%s"
    when = " ".join(f"WHEN %s THEN {then}" for _ in pks)
    return f"(CASE id {when} END)", [v for pair in zip(pks, values, strict=True) for v in pair]


def _rows_update(*, pks: Sequence[int], assignments: Sequence[tuple[str, str, list[Any]]]) -> None:
    """One UPDATE of the driver rows `pks`: each assignment is (column, SQL expression, its
    parameters), applied in this order (MariaDB evaluates SET left to right and later
    assignments see earlier results), plus updated_at. Hand-written because the ORM's
    Case/When costs about a millisecond of Python per row to build; only placeholders and our
    own identifiers go into the text, every value is a parameter."""
    table = connection.ops.quote_name(Driver._meta.db_table)
    sets = ", ".join(f"{column} = {expression}" for column, expression, _ in assignments)
    statement = (
        f"UPDATE {table} SET {sets}, updated_at = %s "  # noqa: S608
        f"WHERE id IN ({', '.join('%s' for _ in pks)})"
    )
    params = [v for _, _, values in assignments for v in values]
    params += [timezone.now(), *pks]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _greatest() -> str:
    return "MAX" if connection.vendor == "sqlite" else "GREATEST"


def drivers_balance_credit(*, credits: Sequence[BalanceCredit]) -> None:
    """driver_balance_credit for many locked driver rows in one statement (the posting
    engine's batch): the same assignments, in the same order (left_to_target first, for
    MariaDB), and the engine's equivalence test holds the two to one result."""
    if not credits:
        return
    if connection.vendor == "postgresql":
        _credit_from_arrays(credits)
        return
    pks = [c.driver_pk for c in credits]
    left, left_params = _by_pk(pks, [c.target - c.amount for c in credits], cast=_DECIMAL)
    amount, amount_params = _by_pk(pks, [c.amount for c in credits], cast=_DECIMAL)
    day, day_params = _by_pk(pks, [c.balance_day for c in credits])
    _rows_update(
        pks=pks,
        assignments=[
            ("left_to_target", f"{_greatest()}(0, {left} - current_balance)", left_params),
            ("current_balance", f"current_balance + {amount}", amount_params),
            ("balance_day", day, day_params),
        ],
    )


def _credit_from_arrays(credits: Sequence[BalanceCredit]) -> None:
    """drivers_balance_credit on PostgreSQL: joined to one array per column (unnest) instead
    of three CASEs of a placeholder per row, which psycopg parses anew for every batch (it
    caches no statement that long: about 5 ms of the engine's CPU per batch of 200). Every SET
    expression reads the row as it was before the UPDATE there, as the CASE version does; one
    credit per driver, so the join matches each row once."""
    table = connection.ops.quote_name(Driver._meta.db_table)
    statement = (
        f"UPDATE {table} SET "  # noqa: S608 - our identifiers, placeholders
        f"left_to_target = GREATEST(0, v.lefts - {table}.current_balance), "
        f"current_balance = {table}.current_balance + v.amount, "
        "balance_day = v.balance_day, updated_at = %s "
        "FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::date[]) "
        f"AS v(id, lefts, amount, balance_day) WHERE {table}.id = v.id"
    )
    columns: list[list[Any]] = [
        [c.driver_pk for c in credits],
        [c.target - c.amount for c in credits],
        [c.amount for c in credits],
        [c.balance_day for c in credits],
    ]
    with connection.cursor() as cursor:
        cursor.execute(statement, [timezone.now(), *map(array_literal, columns)])


@dataclass(frozen=True)
class BalanceAfterClose:
    """What a day close sets on one locked driver row: the next day's opening balance."""

    driver: Driver
    target: Decimal
    balance: Decimal
    balance_day: dt.date
    consecutive_misses: int
    flagged_for_review: bool


def drivers_balance_after_close(*, rows: Sequence[BalanceAfterClose]) -> None:
    """driver_balance_set with the misses and the review flag, for many locked driver rows in
    one statement (the day close, a thousand rows at a time), and on their objects.

    Joined to a table of the values rather than CASE id WHEN ... (drivers_balance_credit): a
    CASE is searched row by row, which cost PostgreSQL 0.15 s per thousand rows here. Every
    value is absolute, so the order MariaDB applies a multi-table UPDATE's assignments in
    (which it does not guarantee) cannot matter. Only placeholders and our own identifiers go
    into the text; every value is a parameter."""
    if not rows:
        return
    table = connection.ops.quote_name(Driver._meta.db_table)
    columns = ["current_balance", "balance_day", "consecutive_misses", "flagged_for_review"]
    values: list[list[Any]] = [
        [r.driver.pk for r in rows],
        [r.target - r.balance for r in rows],
        [r.balance for r in rows],
        [r.balance_day for r in rows],
        [r.consecutive_misses for r in rows],
        [r.flagged_for_review for r in rows],
    ]
    names = ["id", "lefts", *columns]
    now = timezone.now()
    sets = [f"left_to_target = {_greatest()}(0, v.lefts)", *(f"{c} = v.{c}" for c in columns)]
    sets.append("updated_at = %s")
    money = f"CAST(%s AS {_DECIMAL})"
    row = ["%s", money, money, "%s", "%s", "%s"]
    by_row = [value for i in range(len(rows)) for value in (column[i] for column in values)]
    if connection.vendor == "postgresql":
        # One array per column: a placeholder per value costs psycopg about 15 ms of parsing
        # per thousand rows (it caches no statement that long), and PostgreSQL as much again
        # in planning.
        statement = (
            f"UPDATE {table} SET {', '.join(sets)} FROM unnest(%s::bigint[], %s::numeric[], "  # noqa: S608
            "%s::numeric[], %s::date[], %s::integer[], %s::boolean[]) "
            f"AS v({', '.join(names)}) WHERE {table}.id = v.id"
        )
        params: list[Any] = [now, *map(array_literal, values)]
    elif connection.vendor == "mysql":
        # No VALUES with column names there: a derived table; and a multi-table UPDATE needs
        # the target's columns named with their table.
        first = ", ".join(f"{e} AS {c}" for e, c in zip(row, names, strict=True))
        selects = [f"SELECT {first}"] + [f"SELECT {', '.join(row)}"] * (len(rows) - 1)
        statement = (
            f"UPDATE {table} JOIN ({' UNION ALL '.join(selects)}) AS v ON {table}.id = v.id "  # noqa: S608
            f"SET {', '.join(f'{table}.{assignment}' for assignment in sets)}"
        )
        params = [*by_row, now]
    else:  # SQLite names a VALUES list's columns only in a WITH
        tuples = ", ".join([f"({', '.join(row)})"] * len(rows))
        statement = (
            f"WITH v({', '.join(names)}) AS (VALUES {tuples}) "  # noqa: S608
            f"UPDATE {table} SET {', '.join(sets)} FROM v WHERE {table}.id = v.id"
        )
        params = [*by_row, now]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
    # The objects now say what the rows say, without reading them back (a posting's lazy close
    # goes on with its driver object); left_to_target by the same rule as the database's.
    for r in rows:
        r.driver.current_balance = r.balance
        r.driver.left_to_target = max(ZERO, r.target - r.balance)
        r.driver.balance_day = r.balance_day
        r.driver.consecutive_misses = r.consecutive_misses
        r.driver.flagged_for_review = r.flagged_for_review
        r.driver.updated_at = now


def driver_balance_set(
    *, driver_pk: int, target: Decimal, balance: Decimal, day: dt.date | None = None, **also: Any
) -> None:
    """Set the balance (a day close's carry-over, a reconciliation fix) for a locked row."""
    if day is not None:
        also["balance_day"] = day
    Driver.objects.filter(pk=driver_pk).update(
        current_balance=balance,
        left_to_target=_left_to_target(_money(target), _money(balance)),
        updated_at=timezone.now(),
        **also,
    )


def driver_left_to_target_refresh(*, driver_ids: Collection[str]) -> None:
    """Recompute left_to_target after a driver's target changed (or a new driver), from the
    row's current balance in the database; the balance itself is not touched."""
    if not driver_ids:
        return
    global_target = FleetSettings.load().global_daily_target
    target = Case(
        When(daily_target__gt=0, then=F("daily_target")),
        default=_money(global_target),
        output_field=MoneyField(),
    )
    Driver.objects.filter(driver_id__in=list(driver_ids)).update(
        left_to_target=_left_to_target(target, F("current_balance"))
    )
