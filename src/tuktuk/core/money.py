"""Money is Decimal with two places, never float. B2C pays whole shillings only."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import models

from tuktuk.core.errors import InvalidInput

CENT = Decimal("0.01")
SHILLING = Decimal("1")
ZERO = Decimal("0.00")


class MoneyField(models.DecimalField):
    """A Decimal column with two places, wide enough for a fleet's yearly turnover."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("max_digits", 14)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def money(value: Decimal | int | str) -> Decimal:
    """Quantize to cents. Refuses floats: a binary fraction is not an amount of money."""
    if isinstance(value, float):
        raise TypeError("money must not be a float")
    try:
        return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc


def whole_shillings_down(value: Decimal) -> Decimal:
    """Round down to a whole shilling, as M-Pesa B2C pays whole shillings only."""
    return value.quantize(SHILLING, rounding=ROUND_DOWN).quantize(CENT)


def format_ksh(value: Decimal) -> str:
    """`150`, `150.5` -> as operators write amounts: no trailing .00."""
    normalized = money(value)
    if normalized == normalized.to_integral_value():
        return f"{int(normalized)}"
    return f"{normalized}"


# What a MoneyField holds (14 digits, 2 of them decimals): 999,999,999,999.99.
MONEY_FIELD_LIMIT = Decimal(10) ** 12


def operator_amount(raw: Decimal | str | int) -> Decimal:
    """An amount an operator typed: a positive number with at most two decimals, small enough
    for a MoneyField (a larger one, or "1e30", would fail in the database or in quantize)."""
    try:
        amount = Decimal(str(raw).strip())
    except Exception as exc:
        raise InvalidInput(f"amount {raw!r} is not a number") from exc
    if not amount.is_finite() or amount <= 0:
        raise InvalidInput(f"amount {raw!r} must be a positive number")
    if amount >= MONEY_FIELD_LIMIT:
        raise InvalidInput(f"amount {raw!r} is too large")
    if amount != amount.quantize(CENT):
        raise InvalidInput(f"amount {raw!r} has more than 2 decimals")
    return money(amount)
