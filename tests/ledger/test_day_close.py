"""Day close: exactly once per driver and day, lazy inside posting, catching up after downtime."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import connections

from tests.support.clock import nairobi
from tests.support.factories import make_driver, make_operator, pay
from tests.support.invariants import assert_invariants
from tuktuk.backoffice.legacy import reconcile_all_drivers_balances
from tuktuk.core.models import Event
from tuktuk.fleet.models import Driver, FleetSettings, Override
from tuktuk.ledger.business_day import business_day_of, day_close_moment, within_operating_hours
from tuktuk.ledger.day_close import day_close_run, days_due
from tuktuk.ledger.models import DayClose, EntryKind, LedgerEntry
from tuktuk.payouts.models import Payout, PayoutKind

pytestmark = pytest.mark.django_db(transaction=True)
D = dt.date(2026, 3, 10)


@pytest.mark.parametrize(
    ("start", "end", "moment", "day"),
    [
        ((6, 0), (0, 0), nairobi(2026, 3, 10, 23, 59), D),
        ((6, 0), (0, 0), nairobi(2026, 3, 11, 0, 0), D + dt.timedelta(days=1)),
        ((6, 0), (0, 0), nairobi(2026, 3, 11, 3, 0), D + dt.timedelta(days=1)),
        ((6, 0), (2, 0), nairobi(2026, 3, 11, 1, 59), D),  # close at 02:00 the next morning
        ((6, 0), (2, 0), nairobi(2026, 3, 11, 2, 0), D + dt.timedelta(days=1)),
        ((6, 0), (22, 0), nairobi(2026, 3, 10, 21, 59), D),  # close at 22:00 the same day
        ((6, 0), (22, 0), nairobi(2026, 3, 10, 22, 0), D + dt.timedelta(days=1)),
    ],
)
def test_business_day_boundaries(start, end, moment, day) -> None:  # type: ignore[no-untyped-def]
    fleet = FleetSettings(operating_hours_start=dt.time(*start), operating_hours_end=dt.time(*end))
    assert business_day_of(moment, fleet=fleet) == day
    closes = day_close_moment(day, fleet=fleet)
    assert business_day_of(closes, fleet=fleet) == day + dt.timedelta(days=1)
    assert business_day_of(closes - dt.timedelta(seconds=1), fleet=fleet) == day


def test_operating_hours() -> None:
    fleet = FleetSettings()  # 06:00 - 00:00
    assert within_operating_hours(nairobi(2026, 3, 10, 6, 0), fleet=fleet)
    assert within_operating_hours(nairobi(2026, 3, 10, 23, 59), fleet=fleet)
    assert not within_operating_hours(nairobi(2026, 3, 10, 5, 59), fleet=fleet)
    assert not within_operating_hours(nairobi(2026, 3, 11, 0, 30), fleet=fleet)


def test_close_rules_miss_carry_over_and_met_target_with_bonus() -> None:
    fleet = FleetSettings.load()
    fleet.bonus_enabled, fleet.bonus_amount = True, Decimal("200")
    fleet.save()
    with time_machine.travel(nairobi(2026, 3, 10), tick=False):
        short, met = make_driver(1), make_driver(2)
        pay("C1", "2000")  # 1000 of 3000: a miss
        pay("C2", "7000", account="TUK002")  # 3500: met
    with time_machine.travel(nairobi(2026, 3, 11), tick=False):
        assert days_due(FleetSettings.load()) == [D]
        assert day_close_run() == 2
        assert day_close_run() == 0  # twice closes once
        call_command("close_day", "--user", make_operator())  # the same function
    assert DayClose.objects.count() == 2
    short_close = DayClose.objects.get(driver=short)
    assert (short_close.target_met, short_close.carried_over, short_close.consecutive_misses) == (
        False,
        Decimal("-2000.00"),
        1,
    )
    met_close = DayClose.objects.get(driver=met)
    assert (met_close.target_met, met_close.carried_over, met_close.consecutive_misses) == (
        True,
        Decimal("0.00"),
        0,
    )
    short.refresh_from_db()
    met.refresh_from_db()
    assert (short.current_balance, short.left_to_target, short.balance_day) == (
        Decimal("-2000.00"),
        Decimal("5000.00"),
        D + dt.timedelta(days=1),
    )
    assert met.current_balance == 0 and met.consecutive_misses == 0
    openings = LedgerEntry.objects.filter(
        kind=EntryKind.OPENING, business_day=D + dt.timedelta(days=1)
    )
    assert openings.count() == 2
    bonus = Payout.objects.get(kind=PayoutKind.BONUS)
    assert (bonus.driver, bonus.amount) == (met, Decimal("200.00"))
    with time_machine.travel(nairobi(2026, 3, 11), tick=False):
        assert_invariants()


def test_sharing_off_opens_the_next_day_at_zero() -> None:
    with time_machine.travel(nairobi(2026, 3, 10), tick=False):
        driver = make_driver(1, target_sharing=Override.DISABLE)
        pay("S1", "1000")
    with time_machine.travel(nairobi(2026, 3, 11), tick=False):
        day_close_run()
    driver.refresh_from_db()
    assert driver.current_balance == 0 and driver.consecutive_misses == 1


def test_worker_down_for_two_days_catches_up_in_order_and_flags_review() -> None:
    with time_machine.travel(nairobi(2026, 3, 10), tick=False):
        driver = make_driver(1)
        pay("W1", "2000")
    with time_machine.travel(nairobi(2026, 3, 13, 8), tick=False):
        assert days_due(FleetSettings.load()) == [
            D,
            D + dt.timedelta(days=1),
            D + dt.timedelta(days=2),
        ]
        assert day_close_run() == 3
        assert days_due(FleetSettings.load()) == []
    closes = list(DayClose.objects.filter(driver=driver).order_by("business_day"))
    assert [c.business_day for c in closes] == [D + dt.timedelta(days=n) for n in range(3)]
    assert [c.closing_balance for c in closes] == [
        Decimal("1000.00"),
        Decimal("-2000.00"),
        Decimal("-5000.00"),
    ]
    assert [c.consecutive_misses for c in closes] == [1, 2, 3]
    assert closes[-1].flagged_for_review
    assert closes[0].closed_at <= closes[1].closed_at <= closes[2].closed_at
    driver.refresh_from_db()
    assert driver.flagged_for_review and driver.current_balance == Decimal("-8000.00")
    assert Event.objects.filter(title="Driver Flagged For Termination Review").count() == 1
    with time_machine.travel(nairobi(2026, 3, 13, 8), tick=False):
        assert reconcile_all_drivers_balances()["drivers_with_discrepancies"] == 0


def test_lazy_close_inside_posting_when_the_worker_was_down() -> None:
    with time_machine.travel(nairobi(2026, 3, 10, 23, 50), tick=False):
        driver = make_driver(1)
        pay("L1", "2000")
    with time_machine.travel(nairobi(2026, 3, 12, 7), tick=False):
        pay("L2", "1000")  # finds the row on the 10th: closes the 10th and the 11th first
    assert list(
        DayClose.objects.values_list("business_day", flat=True).order_by("business_day")
    ) == [
        D,
        D + dt.timedelta(days=1),
    ]
    driver.refresh_from_db()
    assert driver.balance_day == D + dt.timedelta(days=2)
    assert driver.current_balance == Decimal("-5000.00") + Decimal("500.00")


def test_concurrent_payments_during_a_close_lose_nothing() -> None:
    with time_machine.travel(nairobi(2026, 3, 10), tick=False):
        drivers = [make_driver(n) for n in range(1, 5)]
        for n in range(1, 5):
            pay(f"P{n}", "1000", account=f"TUK{n:03d}")
    start = threading.Barrier(5)
    errors: list[BaseException] = []

    def guarded(work) -> None:  # type: ignore[no-untyped-def]
        try:
            start.wait()
            work()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def payments(n: int) -> None:
        for k in range(8):
            pay(f"N{n}x{k}", "100", account=f"TUK{n:03d}")

    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=True):
        threads = [
            threading.Thread(target=guarded, args=(lambda n=n: payments(n),)) for n in range(1, 5)
        ]
        threads.append(threading.Thread(target=guarded, args=(day_close_run,)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert DayClose.objects.count() == 4  # each driver's day closed exactly once
        for driver in drivers:
            driver.refresh_from_db()
            # -2500 carried over, then 8 payments of 100 at 50%.
            assert driver.current_balance == Decimal("-2500.00") + 8 * Decimal("50.00")
        assert_invariants()


def test_close_day_refuses_the_open_day() -> None:
    make_driver(1)
    with pytest.raises(ValueError, match="still open"):
        day_close_run(through_day=dt.date.today() + dt.timedelta(days=5))
    assert not DayClose.objects.exists()
    assert Driver.objects.get().consecutive_misses == 0


def test_closed_days_and_corrections_refuse_update_even_around_the_orm() -> None:
    from django.db import connection, transaction

    from tests.support.factories import edit_balance_by_sql
    from tuktuk.backoffice.legacy import fix_driver_balance
    from tuktuk.ledger.models import BalanceCorrection

    with time_machine.travel(nairobi(2026, 3, 10), tick=False):
        driver = make_driver(1)
        pay("AO1", "1000")
    with time_machine.travel(nairobi(2026, 3, 11), tick=False):
        day_close_run()
        edit_balance_by_sql(driver, "10")
        fix_driver_balance("DRV-112001", auto_fix=True, reason="test", actor="t")
    for table, row in (
        ("ledger_dayclose", DayClose.objects.get()),
        ("ledger_balancecorrection", BalanceCorrection.objects.get()),
    ):
        with pytest.raises(Exception, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"UPDATE {table} SET driver_id = driver_id WHERE id = %s", [row.pk])
        with pytest.raises(Exception, match="append-only"):
            row.save()
        with pytest.raises(Exception, match="append-only"):
            row.delete()
