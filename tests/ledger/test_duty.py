"""Who drives today (issue 11): assignments over time, handovers, substitutes, vehicle status,
days off and paused drivers; fares land on the driver on duty at their M-Pesa time."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
import time_machine
from django.db import connections

from tests.support.clock import nairobi
from tests.support.factories import make_driver
from tests.support.invariants import assert_invariants
from tuktuk.core.errors import Conflict, InvalidInput, NotFound
from tuktuk.core.models import Event, EventTitle
from tuktuk.fleet.assignments import driver_on_duty, vehicle_status_now
from tuktuk.fleet.models import Assignment, DayOff, Driver, Vehicle, VehicleStatus
from tuktuk.ledger.day_close import day_close_run
from tuktuk.ledger.duty import (
    day_off_set_by,
    roster_generate_by,
    substitute_assign_by,
    substitute_create,
    vehicle_assign_by,
    vehicle_status_change,
)
from tuktuk.ledger.models import DayClose, Transaction
from tuktuk.ledger.reconciliation import driver_balance_check
from tuktuk.ledger.services import IncomingPayment, PostingOutcome, PostingResult, payment_post

pytestmark = pytest.mark.django_db(transaction=True)
D = dt.date(2026, 3, 10)  # a Tuesday


@pytest.fixture(autouse=True)
def ten_oclock() -> Iterator[None]:
    with time_machine.travel(nairobi(2026, 3, 10, 10), tick=True):
        yield


def fare(
    trans_id: str, amount: str, mpesa_time: dt.datetime, account: str = "TUK001"
) -> PostingResult:
    return payment_post(
        payment=IncomingPayment(
            trans_id=trans_id,
            amount=Decimal(amount),
            account_reference=account,
            mpesa_time=mpesa_time,
        )
    )


def credited_to(trans_id: str) -> str:
    driver = Transaction.objects.get(trans_id=trans_id).driver
    return driver.driver_id if driver else ""


def test_a_fare_during_a_handover_lands_on_the_driver_on_duty_at_its_trans_time() -> None:
    make_driver(1)
    make_driver(2)
    vehicle_assign_by(vehicle_id="TUK-002", driver_id=None, actor="m", reason="spare")
    handover = nairobi(2026, 3, 10, 10, 30)
    vehicle_assign_by(
        vehicle_id="TUK-001", driver_id="DRV-112002", actor="m", reason="shift", at=handover
    )
    with time_machine.travel(nairobi(2026, 3, 10, 10, 31), tick=True):
        fare("BEFORE", "100", handover - dt.timedelta(seconds=1))  # delivered after it
        fare("AFTER", "100", handover)
    assert credited_to("BEFORE") == "DRV-112001"
    assert credited_to("AFTER") == "DRV-112002"
    assert (
        Driver.objects.get(driver_id="DRV-112002").vehicle_id
        == Vehicle.objects.get(vehicle_id="TUK-001").pk
    )
    assert Driver.objects.get(driver_id="DRV-112001").vehicle_id is None
    history = list(Assignment.objects.filter(vehicle__vehicle_id="TUK-001").order_by("id"))
    assert [(a.driver.driver_id, a.ends_at) for a in history] == [
        ("DRV-112001", handover),
        ("DRV-112002", None),
    ]
    assert Event.objects.filter(title=EventTitle.VEHICLE_ASSIGNED, actor="m").count() == 2
    assert_invariants()


def test_concurrent_fares_while_the_vehicle_is_reassigned_land_once_on_the_right_person() -> None:
    """The handover and the fares lock the vehicle row, so they are ordered: either the
    handover commits first (fares from its time on go to the new driver) or a fare from after
    its time was credited first and the handover is refused. Either way every fare is credited
    once, to the driver on duty at its M-Pesa time by the history that was kept."""
    make_driver(1)
    make_driver(2)
    vehicle_assign_by(vehicle_id="TUK-002", driver_id=None, actor="m")
    handover = nairobi(2026, 3, 10, 10) + dt.timedelta(seconds=30)
    start = threading.Barrier(21)
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            start.wait()
            job()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    with time_machine.travel(nairobi(2026, 3, 10, 10, 1), tick=True):
        jobs: list[Callable[[], object]] = [
            lambda: vehicle_assign_by(
                vehicle_id="TUK-001", driver_id="DRV-112002", actor="m", at=handover
            )
        ]
        for i in range(10):
            moment = handover + dt.timedelta(seconds=i - 5)  # half before, half after
            jobs.append(lambda i=i, m=moment: fare(f"C{i}", "100", m))
            jobs.append(lambda i=i, m=moment: fare(f"C{i}", "100", m))  # duplicate delivery
        threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    handed_over = not errors
    if errors:  # the handover came after a fare of its own time: refused, nothing moved
        assert len(errors) == 1 and isinstance(errors[0], InvalidInput), errors
    vehicle = Vehicle.objects.get(vehicle_id="TUK-001")
    for i in range(10):
        moment = handover + dt.timedelta(seconds=i - 5)
        on_duty = Driver.objects.get(pk=driver_on_duty(vehicle_pk=vehicle.pk, moment=moment))
        assert credited_to(f"C{i}") == on_duty.driver_id, i
        if i < 5 or handed_over:
            assert on_duty.driver_id == ("DRV-112001" if i < 5 else "DRV-112002"), i
    assert Transaction.objects.count() == 10
    assert_invariants()


def test_substitute_covers_days_off_splits_by_percentage_and_carries_no_debt() -> None:
    regular = make_driver(1)
    with time_machine.travel(nairobi(2026, 3, 9, 10), tick=True):
        fare("PREV", "100", nairobi(2026, 3, 9, 10))  # the regular driver's day before
    substitute = substitute_create(
        name="Sub One", mpesa_number="0711000111", actor="m", daily_target=Decimal("500")
    )
    assert substitute.is_substitute and substitute.vehicle_id is None
    substitute_assign_by(
        vehicle_id="TUK-001", substitute_id=substitute.driver_id, date_from=D, actor="m"
    )
    with pytest.raises(Conflict, match="overlaps"):
        substitute_assign_by(
            vehicle_id="TUK-001", substitute_id=substitute.driver_id, date_from=D, actor="m"
        )
    day_off_set_by(driver_id=regular.driver_id, day=D, off=True, actor="m", reason="leave")
    fare("S1", "600", nairobi(2026, 3, 10, 11))
    fare("S2", "600", nairobi(2026, 3, 10, 12))  # a regular driver would be at 100 % by now
    paid = list(Transaction.objects.filter(driver=substitute).order_by("trans_id"))
    assert [(t.driver_share, t.target_contribution) for t in paid] == [
        (Decimal("300.00"), Decimal("300.00")),
        (Decimal("300.00"), Decimal("300.00")),
    ]
    with time_machine.travel(nairobi(2026, 3, 11, 11), tick=True):
        fare("R1", "200", nairobi(2026, 3, 11, 10, 59))  # back to the regular driver
        day_close_run()
    assert credited_to("R1") == regular.driver_id
    closes = {c.driver.driver_id: c for c in DayClose.objects.filter(business_day=D)}
    sub_close = closes[substitute.driver_id]
    assert (sub_close.target_met, sub_close.carried_over, sub_close.paused) == (
        True,
        Decimal("0.00"),
        False,
    )
    reg_close = closes[regular.driver_id]
    before = DayClose.objects.get(driver=regular, business_day=D - dt.timedelta(days=1))
    assert (before.paused, before.consecutive_misses) == (False, 1)
    # Off on D: no miss, no new debt; the debt of the day before is carried on unchanged.
    assert (reg_close.paused, reg_close.carried_over, reg_close.consecutive_misses) == (
        True,
        before.carried_over,
        1,
    )
    assert_invariants()


def test_a_substitute_misses_without_debt_and_reconciles_like_a_driver() -> None:
    substitute = substitute_create(name="Sub", mpesa_number="0711000112", actor="m")
    make_driver(1)
    substitute_assign_by(
        vehicle_id="TUK-001", substitute_id=substitute.driver_id, date_from=D, actor="m"
    )
    fare("SUB", "1000", nairobi(2026, 3, 10, 11))
    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=True):
        day_close_run()
        snapshot = driver_balance_check(driver=substitute)
    close = DayClose.objects.get(driver=substitute)
    assert (close.target_met, close.carried_over, close.consecutive_misses) == (
        False,
        Decimal("0.00"),
        1,
    )
    substitute.refresh_from_db()
    assert (substitute.current_balance, substitute.flagged_for_review) == (0, False)
    assert snapshot.business_day == D + dt.timedelta(days=1) and not snapshot.needs_fix


def test_a_driver_without_a_vehicle_all_day_is_paused_not_missed() -> None:
    driver = make_driver(1, consecutive_misses=2)
    fare("EARLY", "100", nairobi(2026, 3, 10, 9))
    vehicle_assign_by(vehicle_id="TUK-001", driver_id=None, actor="m")  # from 10:00 on D
    with time_machine.travel(nairobi(2026, 3, 12, 9), tick=True):
        day_close_run()
    closes = list(DayClose.objects.filter(driver=driver).order_by("business_day"))
    # D: the vehicle until 10:00, a real miss; D+1: no vehicle at all, paused.
    assert [(c.business_day, c.paused, c.consecutive_misses) for c in closes] == [
        (D, False, 3),
        (D + dt.timedelta(days=1), True, 3),
    ]
    assert closes[1].carried_over == closes[0].carried_over  # the debt is kept, no new one
    assert_invariants()


def test_the_roster_gives_preferred_days_off_and_the_close_pauses_them() -> None:
    driver = make_driver(1, preferred_day_off=D.weekday())
    fare("EARLY", "100", nairobi(2026, 3, 10, 9))
    period = roster_generate_by(date_from=D, date_to=D + dt.timedelta(days=13), actor="m")
    assert sorted(period.days_off.values_list("day", flat=True)) == [
        D,
        D + dt.timedelta(days=7),
    ]
    day_off_set_by(driver_id=driver.driver_id, day=D, off=False, actor="m", reason="swap")
    day_off_set_by(driver_id=driver.driver_id, day=D + dt.timedelta(days=1), off=True, actor="m")
    with time_machine.travel(nairobi(2026, 3, 12, 9), tick=True):
        day_close_run()
    closes = dict(DayClose.objects.filter(driver=driver).values_list("business_day", "paused"))
    assert closes == {D: False, D + dt.timedelta(days=1): True}
    assert DayOff.objects.filter(driver=driver).count() == 2


def test_vehicle_status_history_and_a_fare_to_a_charging_vehicle_is_posted_and_flagged() -> None:
    make_driver(1)
    vehicle = vehicle_status_change(
        vehicle_id="TUK-001", status="charging", actor="m", reason="battery at 5 %"
    )
    assert vehicle.status == VehicleStatus.CHARGING
    assert vehicle_status_now(vehicle=vehicle) == VehicleStatus.CHARGING
    change = vehicle.status_changes.get()
    assert (change.old_status, change.new_status, change.changed_by) == (
        "Available",
        "Charging",
        "m",
    )
    assert fare("CH1", "100", nairobi(2026, 3, 10, 10)).outcome is PostingOutcome.POSTED
    flagged = Event.objects.get(title=EventTitle.FARE_ON_UNAVAILABLE_VEHICLE)
    assert flagged.data == {"trans_id": "CH1", "vehicle_status": "Charging"}
    vehicle = vehicle_status_change(
        vehicle_id="TUK-001", status="Available", actor="m", reason="ok"
    )
    assert vehicle_status_now(vehicle=vehicle) == VehicleStatus.ASSIGNED
    with pytest.raises(InvalidInput, match="Assigned and Subbed follow the assignments"):
        vehicle_status_change(vehicle_id="TUK-001", status="Subbed", actor="m", reason="x")


def test_a_fare_delivered_after_the_close_credits_who_was_on_duty_in_their_open_day() -> None:
    make_driver(1)
    make_driver(2)
    vehicle_assign_by(vehicle_id="TUK-002", driver_id=None, actor="m")
    handover = nairobi(2026, 3, 10, 18)
    vehicle_assign_by(vehicle_id="TUK-001", driver_id="DRV-112002", actor="m", at=handover)
    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=True):
        day_close_run()
        late = fare("LATE", "300", nairobi(2026, 3, 10, 17))  # paid on D, delivered on D+1
    assert credited_to("LATE") == "DRV-112001"
    assert late.transaction.business_day == D + dt.timedelta(days=1)  # the open day
    assert_invariants()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: vehicle_assign_by(vehicle_id="NOPE", driver_id="DRV-112001", actor="m"),
         NotFound, "no vehicle"),
        (lambda: vehicle_assign_by(vehicle_id="TUK-001", driver_id="DRV-999999", actor="m"),
         NotFound, "no driver"),
        (lambda: vehicle_assign_by(
            vehicle_id="TUK-001", driver_id="DRV-112002", actor="m",
            at=nairobi(2026, 3, 10, 8)),
         InvalidInput, "already credited to another driver"),
        (lambda: substitute_assign_by(
            vehicle_id="TUK-001", substitute_id="DRV-112002", date_from=D, actor="m"),
         InvalidInput, "not a substitute"),
        (lambda: substitute_assign_by(
            vehicle_id="TUK-001", substitute_id="DRV-112003", date_from=D,
            date_to=D - dt.timedelta(days=1), actor="m"),
         InvalidInput, "end on or after"),
        (lambda: substitute_assign_by(
            vehicle_id="TUK-001", substitute_id="DRV-112003", date_from=D, actor="m"),
         InvalidInput, "already credited to another driver"),
        (lambda: vehicle_status_change(
            vehicle_id="TUK-001", status="Flying", actor="m", reason="x"),
         InvalidInput, "not one an operator sets"),
        (lambda: substitute_create(name="X", mpesa_number="12345", actor="m"),
         InvalidInput, "not a Kenyan mobile number"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_and_changes_nothing(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    make_driver(1)
    make_driver(2)
    substitute_create(name="Sub", mpesa_number="0711000113", actor="m")  # DRV-112003
    fare("EARLY", "100", nairobi(2026, 3, 10, 9))  # DRV-112001 drove TUK-001 at 09:00
    before = list(Assignment.objects.order_by("id").values())
    with pytest.raises(error, match=match):
        call()
    assert list(Assignment.objects.order_by("id").values()) == before


def test_a_back_dated_handover_never_takes_a_driver_from_under_their_own_fares() -> None:
    make_driver(1)
    make_driver(2)  # drives TUK-002
    fare("T2", "100", nairobi(2026, 3, 10, 9, 30), account="TUK002")
    with pytest.raises(InvalidInput, match="DRV-112002 has fares on TUK-002"):
        vehicle_assign_by(
            vehicle_id="TUK-001", driver_id="DRV-112002", actor="m", at=nairobi(2026, 3, 10, 9)
        )
    assert credited_to("T2") == "DRV-112002"
    assert Assignment.objects.get(vehicle__vehicle_id="TUK-002").ends_at is None


def test_a_fare_without_an_mpesa_time_counts_at_its_receipt_for_back_dating() -> None:
    make_driver(1)
    make_driver(2)
    vehicle_assign_by(vehicle_id="TUK-002", driver_id=None, actor="m")
    payment_post(
        payment=IncomingPayment(trans_id="NT", amount=Decimal("100"), account_reference="TUK001")
    )  # received at 10:00, no TransTime
    with pytest.raises(InvalidInput, match="already credited to another driver"):
        vehicle_assign_by(
            vehicle_id="TUK-001", driver_id="DRV-112002", actor="m", at=nairobi(2026, 3, 10, 9)
        )


def test_overlap_errors_name_ids_and_nairobi_times_and_no_op_status_changes_record_nothing() -> (
    None
):
    make_driver(1)
    substitute = substitute_create(name="Sub", mpesa_number="0711000114", actor="m")
    assert Event.objects.filter(title=EventTitle.SUBSTITUTE_ADDED).count() == 1
    substitute_assign_by(vehicle_id="TUK-001", substitute_id=substitute.driver_id, date_from=D,
                         actor="m")  # fmt: skip
    with pytest.raises(Conflict, match=r"overlaps substitute cover of TUK-001 to DRV-112002 "
                       r"2026-03-10 00:00–2026-03-11 00:00"):  # fmt: skip
        substitute_assign_by(
            vehicle_id="TUK-001", substitute_id=substitute.driver_id, date_from=D, actor="m"
        )
    vehicle_status_change(vehicle_id="TUK-001", status="Available", actor="m", reason="again")
    assert not Vehicle.objects.get(vehicle_id="TUK-001").status_changes.exists()
