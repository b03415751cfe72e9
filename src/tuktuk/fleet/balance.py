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


@dataclass(frozen=True)
class BalanceCredit:
    driver_pk: int
    target: Decimal
    amount: Decimal
    balance_day: dt.date


def drivers_balance_credit(*, credits: Sequence[BalanceCredit]) -> None:
    """driver_balance_credit for many locked driver rows in one statement (the posting
    engine's batch). Written as SQL because the ORM's Case/When costs about a millisecond of
    Python per row to build here; the same assignments, in the same order (left_to_target
    first, for MariaDB), as driver_balance_credit, and the engine's equivalence test holds the
    two to one result."""
    if not credits:
        return
    table = connection.ops.quote_name(Driver._meta.db_table)
    greatest = "MAX" if connection.vendor == "sqlite" else "GREATEST"
    by_pk = " ".join("WHEN %s THEN CAST(%s AS DECIMAL(14, 2))" for _ in credits)
    day_by_pk = " ".join("WHEN %s THEN %s" for _ in credits)
    # Only placeholders and our own identifiers go into the text; every value is a parameter.
    statement = (
        f"UPDATE {table} SET "  # noqa: S608
        f"left_to_target = {greatest}(0, (CASE id {by_pk} END) - current_balance), "
        f"current_balance = current_balance + (CASE id {by_pk} END), "
        f"balance_day = CASE id {day_by_pk} END, "
        f"updated_at = %s WHERE id IN ({', '.join('%s' for _ in credits)})"
    )
    params: list[Any] = [v for c in credits for v in (c.driver_pk, c.target - c.amount)]
    params += [v for c in credits for v in (c.driver_pk, c.amount)]
    params += [v for c in credits for v in (c.driver_pk, c.balance_day)]
    params += [timezone.now(), *(c.driver_pk for c in credits)]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


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
