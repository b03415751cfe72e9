"""The batch day close (a thousand drivers per statement) against the rules, stated here again.

Random fleets: overrides of the target and of target sharing, misses already counted, drivers
already flagged, days off, drivers with no vehicle, deposits that allow a deduction (or not),
drivers a day behind (their close catches up two days), a day already closed whose row was not
moved on, the bonus on or off. The close runs in chunks of 1 to 4 drivers, so chunk edges fall
everywhere; every driver's close, opening entry, balance, misses, flag, deduction proposal,
review event and bonus must be what the rules say for that driver and no other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.support.clock import nairobi
from tests.support.invariants import assert_invariants
from tuktuk.core.models import Event
from tuktuk.fleet.models import DayOff, Driver, FleetSettings, Override
from tuktuk.fleet.services import driver_upsert, vehicle_upsert
from tuktuk.ledger import day_close
from tuktuk.ledger.day_close import TERMINATION_REVIEW_MISSES, day_close_run
from tuktuk.ledger.deposit_book import deposit_entry_add
from tuktuk.ledger.models import (
    DayClose,
    DeductionProposal,
    DepositAccount,
    DepositEntryKind,
    EntryKind,
    LedgerEntry,
)
from tuktuk.payouts.models import Payout, PayoutKind

D = dt.date(2026, 3, 10)  # the day every driver ends up closing
ZERO = Decimal("0.00")
SHARING = {Override.FOLLOW_GLOBAL: None, Override.ENABLE: True, Override.DISABLE: False}


@dataclass(frozen=True)
class DriverCase:
    target: Decimal | None  # None: the fleet's
    sharing: str  # Override
    earned: Decimal  # the day's ledger sum, on top of its opening debt
    debt: Decimal  # the day opened with it (0 or negative)
    misses: int
    flagged: bool
    off: bool
    has_vehicle: bool
    deposit: Decimal | None  # None: no deposit account
    allows_deduction: bool
    behind: bool  # still on D - 1: the close catches up two days
    closed_not_moved: bool  # D already closed, the row still on D


@dataclass(frozen=True)
class FleetCase:
    target: Decimal
    sharing: bool
    bonus: Decimal  # 0: off


amounts = st.integers(min_value=0, max_value=60).map(lambda n: Decimal(n * 100) + ZERO)
drivers = st.builds(
    DriverCase,
    target=st.one_of(st.none(), st.sampled_from([Decimal("1000.00"), Decimal("2500.00")])),
    sharing=st.sampled_from(list(SHARING)),
    earned=amounts,
    debt=st.sampled_from([ZERO, Decimal("-500.00"), Decimal("-3000.00")]),
    misses=st.integers(min_value=0, max_value=TERMINATION_REVIEW_MISSES),
    flagged=st.booleans(),
    off=st.booleans(),
    has_vehicle=st.integers(0, 5).map(bool),
    deposit=st.one_of(st.none(), st.sampled_from([ZERO, Decimal("700.00"), Decimal("5000.00")])),
    allows_deduction=st.booleans(),
    behind=st.integers(0, 4).map(lambda n: n == 0),
    closed_not_moved=st.integers(0, 9).map(lambda n: n == 0),
)
fleets = st.builds(
    FleetCase,
    target=st.sampled_from([Decimal("3000.00"), Decimal("1500.00")]),
    sharing=st.booleans(),
    bonus=st.sampled_from([ZERO, Decimal("150.00")]),
)


@dataclass(frozen=True)
class Verdict:
    """One day's close as DESIGN.md states the rules."""

    closing: Decimal
    met: bool
    paused: bool
    misses: int
    carried: Decimal
    flagged: bool


def rules(
    case: DriverCase, fleet: FleetCase, *, closing: Decimal, misses: int, flagged: bool
) -> Verdict:
    target = case.target or fleet.target
    sharing = fleet.sharing if SHARING[case.sharing] is None else SHARING[case.sharing]
    paused = not case.has_vehicle or case.off
    met = closing >= target
    if paused:  # no miss, no new debt: only a debt the day opened with is carried on
        carried = min(closing, ZERO) if sharing else ZERO
    else:
        misses = 0 if met else misses + 1
        carried = -(target - closing) if sharing and not met else ZERO
    return Verdict(
        closing=closing,
        met=met,
        paused=paused,
        misses=misses,
        carried=carried,
        flagged=flagged or (bool(sharing) and misses >= TERMINATION_REVIEW_MISSES),
    )


def fleet_make(cases: list[DriverCase], fleet: FleetCase) -> list[Driver]:
    settings_row = FleetSettings.load()
    settings_row.global_daily_target = fleet.target
    settings_row.target_sharing = fleet.sharing
    settings_row.bonus_enabled = fleet.bonus > 0
    settings_row.bonus_amount = fleet.bonus
    settings_row.save()
    made = []
    for number, case in enumerate(cases, start=1):
        vehicle = (
            vehicle_upsert(vehicle_id=f"TUK-{number:03d}", mpesa_account=f"TUK{number:03d}")
            if case.has_vehicle
            else None
        )
        driver, _ = driver_upsert(
            driver_id=f"DRV-{112000 + number}",
            name=f"Driver {number}",
            mpesa_number=f"07{number:08d}",
            vehicle=vehicle,
            daily_target=case.target,
        )
        day = D - dt.timedelta(days=1) if case.behind else D
        for kind, amount in ((EntryKind.OPENING, case.debt), (EntryKind.CORRECTION, case.earned)):
            LedgerEntry.objects.create(driver=driver, business_day=day, kind=kind, amount=amount)
        Driver.objects.filter(pk=driver.pk).update(
            current_balance=case.debt + case.earned,
            balance_day=day,
            consecutive_misses=case.misses,
            flagged_for_review=case.flagged,
            target_sharing=case.sharing,
        )
        if case.off:
            DayOff.objects.create(driver=driver, day=day, created_by="test")
        if case.deposit is not None:
            DepositAccount.objects.create(
                driver=driver, allow_target_deduction=case.allows_deduction
            )
            if case.deposit > 0:
                deposit_entry_add(
                    driver=driver,
                    kind=DepositEntryKind.INITIAL,
                    amount=case.deposit,
                    reference="test",
                )
        if case.closed_not_moved and not case.behind:
            DayClose.objects.create(
                driver=driver,
                business_day=D,
                closing_balance=ZERO,
                cached_balance=ZERO,
                target=fleet.target,
                target_met=True,
                sharing=True,
                carried_over=ZERO,
                consecutive_misses=0,
            )
        made.append(driver)
    return made


def expected_outcome(cases: list[DriverCase], fleet: FleetCase, made: list[Driver]) -> Any:
    closes, balances, proposals, flagged_events, bonuses = {}, {}, {}, [], []
    for driver, case in zip(made, cases, strict=True):
        if case.closed_not_moved and not case.behind:
            balances[driver.driver_id] = (case.debt + case.earned, D + dt.timedelta(days=1))
            balances[driver.driver_id] += (case.misses, case.flagged)
            continue
        first_day = D - dt.timedelta(days=1) if case.behind else D
        closing, misses, flagged = case.debt + case.earned, case.misses, case.flagged
        deposit = case.deposit
        day = first_day
        while day <= D:
            # The days off and the vehicle hold for both days: the day off is on the first day
            # only, so a caught-up second day is paused only for want of a vehicle.
            day_case = case if day == first_day else _second_day(case)
            verdict = rules(day_case, fleet, closing=closing, misses=misses, flagged=flagged)
            closes[(driver.driver_id, day)] = verdict
            target = case.target or fleet.target
            shortfall = target - verdict.closing
            if (
                not verdict.met
                and not verdict.paused
                and case.allows_deduction
                and deposit is not None
                and deposit > 0
            ):
                proposals[(driver.driver_id, day)] = (shortfall, min(shortfall, deposit))
            if verdict.flagged and not flagged:
                flagged_events.append((driver.driver_id, day.isoformat()))
            if verdict.met and not verdict.paused and fleet.bonus > 0:
                bonuses.append((driver.driver_id, day))
            closing, misses, flagged = verdict.carried, verdict.misses, verdict.flagged
            day += dt.timedelta(days=1)
        balances[driver.driver_id] = (closing, D + dt.timedelta(days=1), misses, flagged)
    return closes, balances, proposals, sorted(flagged_events), sorted(bonuses)


def _second_day(case: DriverCase) -> DriverCase:
    return replace(case, off=False)


def actual_outcome(*, before: set[int]) -> Any:
    closes = {
        (c.driver.driver_id, c.business_day): Verdict(
            closing=c.closing_balance,
            met=c.target_met,
            paused=c.paused,
            misses=c.consecutive_misses,
            carried=c.carried_over,
            flagged=c.flagged_for_review,
        )
        for c in DayClose.objects.select_related("driver").exclude(pk__in=before)
    }
    balances = {
        d.driver_id: (d.current_balance, d.balance_day, d.consecutive_misses, d.flagged_for_review)
        for d in Driver.objects.all()
    }
    for driver in Driver.objects.all():  # the cached left_to_target follows the balance
        target = driver.effective_target(FleetSettings.load())
        assert driver.left_to_target == max(ZERO, target - driver.current_balance)
    proposals = {
        (p.driver.driver_id, p.business_day): (p.shortfall, p.amount)
        for p in DeductionProposal.objects.select_related("driver")
    }
    flagged_events = sorted(
        (e.driver, e.data["business_day"])
        for e in Event.objects.filter(title="Driver Flagged For Termination Review")
    )
    bonuses = sorted(
        (p.driver.driver_id, dt.date.fromisoformat(p.originator_conversation_id[-10:]))
        for p in Payout.objects.filter(kind=PayoutKind.BONUS).select_related("driver")
    )
    return closes, balances, proposals, flagged_events, bonuses


def _openings_follow_the_closes(*, before: set[int]) -> None:
    for close in DayClose.objects.exclude(pk__in=before):
        opening = LedgerEntry.objects.get(
            driver=close.driver,
            business_day=close.business_day + dt.timedelta(days=1),
            kind=EntryKind.OPENING,
        )
        assert opening.amount == close.carried_over


class _RollBack(Exception):
    pass


def _missing(deposit: Decimal, **also: Any) -> DriverCase:
    fields: dict[str, Any] = {
        "target": None,
        "sharing": Override.FOLLOW_GLOBAL,
        "earned": Decimal("100.00"),
        "debt": ZERO,
        "misses": 2,
        "flagged": False,
        "off": False,
        "has_vehicle": True,
        "deposit": deposit,
        "allows_deduction": True,
        "behind": False,
        "closed_not_moved": False,
    }
    return DriverCase(**(fields | also))


# Always tried: one chunk of drivers who all miss, with different deposits (each proposal must
# be paid from its own driver's deposit), one of them a day behind, one flagged by this close.
SAME_CHUNK = [
    _missing(Decimal("700.00")),
    _missing(Decimal("5000.00"), misses=0),
    _missing(Decimal("5000.00"), behind=True),
    _missing(ZERO, allows_deduction=False),
]


@pytest.mark.django_db
@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cases=st.lists(drivers, min_size=1, max_size=9),
    fleet=fleets,
    chunk=st.integers(min_value=1, max_value=4),
)
@example(cases=SAME_CHUNK, fleet=FleetCase(Decimal("3000.00"), True, ZERO), chunk=4)
def test_the_batch_close_gives_each_driver_what_the_rules_say(
    cases: list[DriverCase], fleet: FleetCase, chunk: int
) -> None:
    # A day closed but not moved on holds nothing (its close said so).
    cases = [
        replace(case, debt=ZERO, earned=ZERO) if case.closed_not_moved and not case.behind else case
        for case in cases
    ]
    try:
        with transaction.atomic():
            with time_machine.travel(nairobi(2026, 3, 8, 7), tick=False):
                made = fleet_make(cases, fleet)
            before = set(DayClose.objects.values_list("pk", flat=True))
            with (
                time_machine.travel(nairobi(2026, 3, 11, 10), tick=False),
                mock.patch.object(day_close, "DAY_CLOSE_CHUNK", chunk),
            ):
                closed = day_close_run()
                assert day_close_run() == 0  # twice closes nothing twice
            expected = expected_outcome(cases, fleet, made)
            assert closed == len(expected[0])
            assert actual_outcome(before=before) == expected
            _openings_follow_the_closes(before=before)
            with time_machine.travel(nairobi(2026, 3, 11, 10), tick=False):
                assert_invariants()
            raise _RollBack
    except _RollBack:
        pass
