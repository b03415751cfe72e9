"""The split rules as properties (docs/design.md, section 3)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tuktuk.fleet.models import Driver, FleetSettings, Override
from tuktuk.ledger.services import driver_split
from tuktuk.ledger.split import split_payment

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("250000"), places=2)
balances = st.decimals(min_value=Decimal("-10000"), max_value=Decimal("20000"), places=2)
targets = st.decimals(min_value=Decimal("1"), max_value=Decimal("10000"), places=2)
percentages = st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), places=2)


@given(
    amount=amounts, balance=balances, target=targets, percentage=percentages, sharing=st.booleans()
)
def test_split_adds_up_whole_shillings_never_negative(amount, balance, target, percentage, sharing):
    split = split_payment(
        amount=amount, balance=balance, target=target, percentage=percentage, sharing=sharing
    )
    assert split.driver_share + split.target_contribution == amount
    assert split.driver_share == split.driver_share.to_integral_value()
    assert split.driver_share >= 0 and split.target_contribution >= 0
    assert split.driver_share.as_tuple().exponent == -2  # Decimal with two places
    assert split.target_contribution.as_tuple().exponent == -2


@given(
    amount=amounts, balance=balances, target=targets, percentage=percentages, sharing=st.booleans()
)
def test_share_is_percentage_rounded_down_below_target(
    amount, balance, target, percentage, sharing
):
    if sharing and balance >= target:
        return
    split = split_payment(
        amount=amount, balance=balance, target=target, percentage=percentage, sharing=sharing
    )
    exact = amount * percentage / 100
    assert split.driver_share <= exact < split.driver_share + 1


@given(amount=amounts, extra=st.decimals(min_value=0, max_value=5000, places=2), target=targets)
def test_target_met_with_sharing_pays_everything_to_the_driver(amount, extra, target):
    split = split_payment(
        amount=amount, balance=target + extra, target=target, percentage=Decimal(50), sharing=True
    )
    assert split.driver_share == amount.to_integral_value(rounding="ROUND_DOWN")
    assert split.target_contribution == amount - split.driver_share
    assert split.target_contribution < 1


@given(amount=amounts, extra=st.decimals(min_value=0, max_value=5000, places=2), target=targets)
def test_target_met_without_sharing_still_splits(amount, extra, target):
    split = split_payment(
        amount=amount, balance=target + extra, target=target, percentage=Decimal(50), sharing=False
    )
    assert split.driver_share == (amount / 2).to_integral_value(rounding="ROUND_DOWN")


@given(
    amount=amounts,
    own_target=st.one_of(st.none(), st.just(Decimal(0)), targets),
    own_percentage=st.one_of(st.none(), st.just(Decimal(0)), percentages),
    own_sharing=st.sampled_from(Override.values),
    global_sharing=st.booleans(),
    balance=balances,
)
def test_overrides_beat_globals(
    amount, own_target, own_percentage, own_sharing, global_sharing, balance
):
    fleet = FleetSettings(
        global_daily_target=Decimal("3000"),
        global_fare_percentage=Decimal("50"),
        target_sharing=global_sharing,
    )
    driver = Driver(
        daily_target=own_target,
        fare_percentage=own_percentage,
        target_sharing=own_sharing,
        current_balance=balance,
    )
    expected_target = own_target if own_target else Decimal("3000")
    expected_percentage = own_percentage if own_percentage else Decimal("50")
    expected_sharing = {"Enable": True, "Disable": False}.get(own_sharing, global_sharing)
    assert driver_split(driver=driver, fleet=fleet, amount=amount) == split_payment(
        amount=amount,
        balance=balance,
        target=expected_target,
        percentage=expected_percentage,
        sharing=expected_sharing,
    )


def test_legacy_example():
    # 50% of 155 is 77.50: the driver gets 77 (whole shillings), the target 78.
    split = split_payment(
        amount=Decimal("155"),
        balance=Decimal("0"),
        target=Decimal("3000"),
        percentage=Decimal("50"),
        sharing=True,
    )
    assert (split.driver_share, split.target_contribution) == (Decimal("77"), Decimal("78"))
