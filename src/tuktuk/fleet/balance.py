"""The one writer of a driver's cached `current_balance` and `left_to_target`.

`left_to_target = max(0, target − current_balance)` is computed here and nowhere else, always
in the database, so a concurrent posting is never overwritten by a value read earlier. The
ledger calls these under the driver's row lock; the fleet calls the refresh when a target
changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from decimal import Decimal
from typing import Any

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
