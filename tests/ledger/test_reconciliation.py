"""The legacy reconciliation scenarios, made exact by the ledger."""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from tests.support.clock import nairobi
from tests.support.factories import edit_balance_by_sql, make_driver, pay
from tests.support.invariants import assert_invariants
from tuktuk.backoffice.legacy import (
    fix_driver_balance,
    reconcile_all_drivers_balances,
    reconcile_driver_balance,
)
from tuktuk.core.errors import NotFound
from tuktuk.core.models import Event
from tuktuk.ledger.models import BalanceCorrection, DayClose, LedgerEntry, Transaction
from tuktuk.ledger.selectors import balance_snapshots

pytestmark = pytest.mark.django_db(transaction=True)


def test_sql_edit_is_detected_fixed_and_rechecked_clean() -> None:
    driver = make_driver(1)
    for n, amount in enumerate(["1000", "2000", "1700"]):
        pay(f"RC{n}", amount)  # contributions 500 + 1000 + 850 = 2350
    assert reconcile_driver_balance("DRV-112001")["message"] == (
        "✅ Balance is correct - no discrepancy"
    )
    edit_balance_by_sql(driver, "150")
    result = reconcile_driver_balance("DRV-112001")
    assert result["old_balance"] == Decimal("2500.00")
    assert result["calculated_balance"] == Decimal("2350.00")
    assert result["discrepancy"] == Decimal("150.00")
    assert result["transactions_count"] == 3
    assert result["message"] == "⚠️ DISCREPANCY DETECTED: 150 KSH extra"
    assert result["driver"] == "Driver 1" and result["driver_name"] == "DRV-112001"
    assert result["from_datetime"].endswith("00:00:00")  # the day starts at the close, not 06:00

    preview = fix_driver_balance("DRV-112001", auto_fix=False)
    assert preview["preview"] is True and preview["adjustment"] == Decimal("150.00")
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("2500.00")  # a preview changes nothing
    assert not BalanceCorrection.objects.exists()

    with pytest.raises(ValueError, match="reason"):
        fix_driver_balance("DRV-112001", auto_fix=True)
    fixed = fix_driver_balance("DRV-112001", auto_fix=True, reason="SQL edit", actor="alice")
    assert fixed["message"] == "✅ Balance fixed: 2500 → 2350 (adjusted 150 KSH)"
    assert (fixed["old_balance"], fixed["new_balance"], fixed["adjustment"]) == (
        Decimal("2500.00"),
        Decimal("2350.00"),
        Decimal("150.00"),
    )
    correction = BalanceCorrection.objects.get()
    assert (correction.reason, correction.actor, correction.adjustment) == (
        "SQL edit",
        "alice",
        Decimal("150.00"),
    )
    assert Event.objects.filter(title="Balance Fixed", actor="alice").count() == 1
    assert Event.objects.filter(title="Balance Discrepancy Detected").exists()
    assert reconcile_driver_balance("DRV-112001")["discrepancy"] == 0
    driver.refresh_from_db()
    assert driver.left_to_target == Decimal("650.00")
    assert_invariants()


def test_missing_balance_is_reported_as_missing() -> None:
    driver = make_driver(1)
    pay("RM1", "1000")
    edit_balance_by_sql(driver, "-200.50")
    result = reconcile_driver_balance("DRV-112001")
    assert result["message"] == "⚠️ DISCREPANCY DETECTED: 200.50 KSH missing"
    assert result["discrepancy"] == Decimal("-200.50")


def test_unknown_driver_and_bad_date_are_clear_errors() -> None:
    make_driver(1)
    with pytest.raises(NotFound, match="DRV-999999"):
        reconcile_driver_balance("DRV-999999")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        reconcile_driver_balance("DRV-112001", date="yesterday")


def test_carried_over_debt_and_after_midnight_payments_reconcile_exactly() -> None:
    with time_machine.travel(nairobi(2026, 3, 10, 9), tick=False):
        driver = make_driver(1)
        pay("CD1", "2000")  # contribution 1000 of a 3000 target
    with time_machine.travel(nairobi(2026, 3, 11, 0, 30), tick=False):
        pay("CD2", "400")  # after midnight, before 06:00: the new day, after the close
        result = reconcile_driver_balance("DRV-112001")
    assert result["business_day"] == "2026-03-11"
    assert result["opening_balance"] == Decimal("-2000.00")  # debt carried over
    assert result["calculated_balance"] == Decimal("-1800.00")
    assert result["discrepancy"] == 0 and result["problems"] == []
    close = DayClose.objects.get(driver=driver, business_day=dt.date(2026, 3, 10))
    assert (close.closing_balance, close.carried_over, close.consecutive_misses) == (
        Decimal("1000.00"),
        Decimal("-2000.00"),
        1,
    )
    # The payment split saw the new day's balance (-2000 < target: 50%).
    assert Transaction.objects.get(trans_id="CD2").target_contribution == Decimal("200.00")
    # The closed day still reconciles against the balance recorded at its close.
    past = reconcile_driver_balance("DRV-112001", date="2026-03-10")
    assert (past["day_state"], past["calculated_balance"], past["discrepancy"]) == (
        "closed",
        Decimal("1000.00"),
        0,
    )
    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=False):
        assert_invariants()


def test_missing_contribution_entry_is_a_problem_and_the_fix_posts_it() -> None:
    driver = make_driver(1)
    pay("ME1", "1000")
    pay("ME2", "600")
    # Simulate the legacy failure: the balance moved but the entry was lost.
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM ledger_ledgerentry WHERE transaction_id = %s",
            [Transaction.objects.get(trans_id="ME2").pk],
        )
    result = reconcile_driver_balance("DRV-112001")
    assert [p["type"] for p in result["problems"]] == ["missing_entry"]
    assert result["problems"][0]["trans_id"] == "ME2"
    assert result["discrepancy"] == Decimal("300.00")
    fixed = fix_driver_balance("DRV-112001", auto_fix=True, reason="lost entry")
    assert fixed["entries_posted"] == 1
    assert fixed["new_balance"] == Decimal("800.00") and fixed["adjustment"] == 0
    again = reconcile_driver_balance("DRV-112001")
    assert again["problems"] == [] and again["discrepancy"] == 0
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("800.00")
    assert_invariants()


def test_duplicate_deliveries_are_reported_but_need_no_fix(client) -> None:  # type: ignore[no-untyped-def]
    from django.conf import settings

    from tests.support.c2b import confirmation_payload

    make_driver(1)
    payload = confirmation_payload(trans_id="DD1", amount="100", account="TUK001")
    for _ in range(3):
        client.post(
            f"/c2b/{settings.CALLBACK_TOKEN}/confirmation",
            json.dumps(payload),
            content_type="application/json",
        )
    result = reconcile_driver_balance("DRV-112001")
    # Harmless: information beside the problems, never among them.
    assert result["problems"] == [] and result["needs_fix"] is False
    (information,) = result["information"]
    assert information["type"] == "duplicate_trans_id" and information["needs_fix"] is False
    assert "delivered 3 times, posted 1 time" in information["detail"]
    assert result["message"] == "✅ Balance is correct - no discrepancy"
    mass = reconcile_all_drivers_balances()
    assert mass["drivers_with_discrepancies"] == 0 and mass["results"] == []


def test_mass_reconciliation_7_drivers_3_broken() -> None:
    drivers = [make_driver(n) for n in range(1, 8)]
    for n in range(1, 8):
        pay(f"MR{n}", "1000", account=f"TUK{n:03d}")
    edit_balance_by_sql(drivers[1], "150")
    edit_balance_by_sql(drivers[3], "-300")
    edit_balance_by_sql(drivers[5], "5000")  # above the 1000 KSH review threshold
    check = reconcile_all_drivers_balances()
    assert (check["total_drivers"], check["drivers_checked"]) == (7, 7)
    assert check["drivers_with_discrepancies"] == 3
    assert check["total_discrepancy_amount"] == Decimal("5450.00")
    assert check["auto_fixed"] is False
    assert {r["driver_name"]: r["discrepancy"] for r in check["results"]} == {
        "DRV-112002": Decimal("150.00"),
        "DRV-112004": Decimal("-300.00"),
        "DRV-112006": Decimal("5000.00"),
    }
    assert not BalanceCorrection.objects.exists()

    fixed = reconcile_all_drivers_balances(auto_fix=True)
    by_driver = {r["driver_name"]: r for r in fixed["results"]}
    assert by_driver["DRV-112002"]["fixed"] and by_driver["DRV-112004"]["fixed"]
    assert by_driver["DRV-112006"]["fixed"] is False
    assert by_driver["DRV-112006"]["needs_review"] is True
    assert fixed["drivers_needing_review"] == 1
    after = reconcile_all_drivers_balances()
    assert [r["driver_name"] for r in after["results"]] == ["DRV-112006"]
    # An operator can still fix it one by one, with a reason.
    fix_driver_balance("DRV-112006", auto_fix=True, reason="reviewed: typo", actor="bob")
    assert reconcile_all_drivers_balances()["drivers_with_discrepancies"] == 0


def test_reconciliation_uses_a_constant_number_of_queries() -> None:
    for n in range(1, 4):
        make_driver(n)
        pay(f"Q{n}", "100", account=f"TUK{n:03d}")
    with CaptureQueriesContext(connection) as few:
        balance_snapshots()
    for n in range(4, 16):
        make_driver(n)
        pay(f"Q{n}", "100", account=f"TUK{n:03d}")
    with CaptureQueriesContext(connection) as many:
        balance_snapshots()
    assert len(few) == len(many) <= 8


def test_cli_reconcile_exit_codes_and_json(capsys, people) -> None:  # type: ignore[no-untyped-def]
    driver = make_driver(1)
    pay("CL1", "1000")
    call_command("reconcile", "DRV-112001")  # clean: exit 0
    assert "no discrepancy" in capsys.readouterr().out
    edit_balance_by_sql(driver, "150")
    with pytest.raises(SystemExit) as exited:
        call_command("reconcile", "DRV-112001", "--json")
    assert exited.value.code == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["discrepancy"] == 150 and isinstance(answer["discrepancy"], float | int)
    with pytest.raises(CommandError, match="may not"):
        call_command("reconcile", "DRV-112001", "--fix", "--reason", "x", "--user", "accountant")
    call_command("reconcile", "DRV-112001", "--fix", "--reason", "cli test", "--user", "manager")
    assert "Balance fixed" in capsys.readouterr().out
    call_command("reconcile", "--all")
    assert "0 with discrepancies" in capsys.readouterr().out


def test_fix_racing_with_payments_ends_consistent() -> None:
    driver = make_driver(1, daily_target=Decimal("1000000"))
    pay("FR0", "1000")
    edit_balance_by_sql(driver, "777")
    start = threading.Barrier(5)
    errors: list[BaseException] = []

    def payer(n: int) -> None:
        try:
            start.wait()
            for k in range(10):
                pay(f"FR{n}x{k}", "100")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def fixer() -> None:
        try:
            start.wait()
            fix_driver_balance("DRV-112001", auto_fix=True, reason="race test")
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=payer, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=fixer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("500.00") + 40 * Decimal("50.00")
    assert reconcile_driver_balance("DRV-112001")["discrepancy"] == 0
    assert LedgerEntry.objects.count() == 41
    assert_invariants()


def test_fixing_a_closed_days_missing_entry_twice_corrects_it_once() -> None:
    with time_machine.travel(nairobi(2026, 3, 10), tick=False):
        driver = make_driver(1)
        pay("CF1", "1000")
        pay("CF2", "600")  # its entry will be lost
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM ledger_ledgerentry WHERE transaction_id = %s",
                [Transaction.objects.get(trans_id="CF2").pk],
            )
    with time_machine.travel(nairobi(2026, 3, 11), tick=False):
        pay("CF3", "200")  # closes the 10th on the ledger as it was (500, not 800)
        past = reconcile_driver_balance("DRV-112001", date="2026-03-10")
        assert [p["type"] for p in past["problems"]] == ["missing_entry"]
        first = fix_driver_balance("DRV-112001", date="2026-03-10", auto_fix=True, reason="lost")
        second = fix_driver_balance("DRV-112001", date="2026-03-10", auto_fix=True, reason="again")
        assert first["entries_posted"] == 1 and second["entries_posted"] == 0
        correction = LedgerEntry.objects.get(kind="correction")
        assert (correction.amount, correction.business_day) == (
            Decimal("300.00"),
            dt.date(2026, 3, 11),
        )
        assert reconcile_driver_balance("DRV-112001", date="2026-03-10")["problems"] == []
        driver.refresh_from_db()
        # -2500 carried over + 100 from CF3 + the 300 the lost entry should have added.
        assert driver.current_balance == Decimal("-2100.00")
        assert reconcile_driver_balance("DRV-112001")["discrepancy"] == 0
