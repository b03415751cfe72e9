"""`key__any_of={...}`: an integer key (a primary or foreign key), or a text column (a TransID,
an M-Pesa account), is one of these, in one parameter.

Why not `__in`: for a thousand keys (a day close's chunk of drivers) `__in` writes a
placeholder per value and prepares each value through the field, and psycopg then parses a
statement of that size without its cache: together about 1.4 s of CPU in a 10,000-driver day
close. On PostgreSQL `= ANY(%s::bigint[])` takes the keys as one parameter, written as an
array literal (psycopg's own list dumping costs a microsecond per element); elsewhere it is
the same `IN (...)` as `__in`, with the keys passed as they are.

Pass a set (or any iterable but a list or a tuple: the ORM walks those element by element
before the lookup sees them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.lookups import Lookup
from django.db.models.sql.compiler import SQLCompiler


class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self) -> Any:
        return [int(key) for key in self.rhs]

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values: list[Any] = self.rhs
        if not values:
            raise EmptyResultSet
        if connection.vendor == "postgresql":
            return self.postgresql_any(lhs, lhs_params, values)
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", (*lhs_params, *values)

    def postgresql_any(
        self, lhs: str, lhs_params: Any, values: list[Any]
    ) -> tuple[str, tuple[Any, ...]]:
        return f"{lhs} = ANY(%s::bigint[])", (*lhs_params, array_literal(values))


class TextAnyOf(AnyOf):
    """any_of for a text column: on PostgreSQL `= ANY(%s::text[])`, the strings as one list
    parameter (a varchar column compares with text and keeps its index)."""

    def get_prep_lookup(self) -> Any:
        return [str(value) for value in self.rhs]

    def postgresql_any(
        self, lhs: str, lhs_params: Any, values: list[Any]
    ) -> tuple[str, tuple[Any, ...]]:
        return f"{lhs} = ANY(%s::text[])", (*lhs_params, values)


def lookups_register() -> None:
    """Called once when Django starts (CoreConfig.ready)."""
    models.IntegerField.register_lookup(AnyOf)
    models.ForeignKey.register_lookup(AnyOf)
    models.CharField.register_lookup(TextAnyOf)


def array_literal(values: Iterable[int | Decimal | dt.date | bool]) -> str:
    """A PostgreSQL array literal, `{1,2,3}`, of values whose text needs no quoting (integers,
    decimals, dates, booleans), for a `%s::type[]` parameter: psycopg's own list dumping costs
    about a microsecond per element, a join of their text a tenth of that."""

    def text(value: int | Decimal | dt.date | bool) -> str:
        if isinstance(value, bool):
            return "t" if value else "f"
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, int):
            return str(value)
        return str(Decimal(value))

    return "{" + ",".join(map(text, values)) + "}"
