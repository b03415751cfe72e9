"""How a payment splits into the driver's share and the target contribution (legacy rules)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tuktuk.core.money import money, whole_shillings_down


@dataclass(frozen=True)
class Split:
    driver_share: Decimal
    target_contribution: Decimal


def split_payment(
    *, amount: Decimal, balance: Decimal, target: Decimal, percentage: Decimal, sharing: bool
) -> Split:
    """Split amount A given the locked balance B.

    Sharing on and B >= T: the target is met, the driver keeps 100%. Otherwise the driver gets
    A x P / 100 rounded DOWN to a whole shilling (B2C pays whole shillings), and the rest counts
    toward the target, so A = share + contribution exactly. B2C cannot pay cents, so even at
    100% the cents of a fractional amount count toward the target instead of vanishing.
    """
    amount = money(amount)
    if sharing and balance >= target:
        share = whole_shillings_down(amount)
    else:
        share = whole_shillings_down(amount * percentage / Decimal(100))
    return Split(driver_share=share, target_contribution=amount - share)
