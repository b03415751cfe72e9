"""Driver statements that add up across day closes, their CSV and CLI; the duplicates report."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.support.c2b import confirmation_payload
from tests.support.clock import nairobi
from tests.support.factories import make_driver, pay
from tuktuk.backoffice.legacy import fix_driver_balance
from tuktuk.core.errors import InvalidInput, NotFound
from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import Transaction
from tuktuk.ledger.statement import (
    Statement,
    driver_statement,
)
from tuktuk.ledger.statement_csv import CSV_HEADER, statement_csv, statement_csv_filename
from tuktuk.mpesa.selectors import duplicates_report

pytestmark = pytest.mark.django_db(transaction=True)
D = dt.date(2026, 3, 10)
D1 = D + dt.timedelta(days=1)
MONEY_CELL = re.compile(r"-?[0-9]+\.[0-9]{2}")
MONEY_COLUMNS = [
    "amount",
    "driver_share",
    "target_contribution",
    "balance_change",
    "running_balance",
]


def assert_adds_up(statement: Statement) -> None:
    for day in statement.days:
        assert day.closing == day.opening + day.contributions + day.corrections
    totals = statement.totals
    assert totals.opening_balance == statement.days[0].opening
    assert totals.closing_balance == statement.days[-1].closing
    assert totals.closing_balance == (
        totals.opening_balance
        + totals.contributions
        + totals.corrections
        + totals.carry_over_adjustments
    )
    assert totals.amount_received == sum(
        (t.amount for t in statement.transactions if t.transaction_type != "Adjustment"),
        Decimal(0),
    )
    assert totals.driver_share == sum((t.driver_share for t in statement.transactions), Decimal(0))
    assert totals.target_contribution == sum(
        (t.target_contribution for t in statement.transactions), Decimal(0)
    )


def csv_rows(text: str) -> list[dict[str, str]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == CSV_HEADER
    assert all(len(row) == len(CSV_HEADER) for row in rows)
    return [dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]]


@pytest.fixture
def carried_debt() -> Driver:
    """Paid 2000 on D (1000 contributed of 3000: a miss), 400 on D+1 after the lazy close."""
    with time_machine.travel(nairobi(2026, 3, 10, 9), tick=False):
        driver = make_driver(1)
        pay("ST1", "2000")
    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=False):
        pay("ST2", "400")  # closes D first: D+1 opens at -(3000 - 1000)
    driver.refresh_from_db()
    return driver


@pytest.fixture
def corrected() -> Driver:
    """D: ME1 (contributes 500) and ME2 (300), D closed at 800 by ME3 on D+1 (500); then ME2's
    entry is lost by raw SQL and the fix posts a correction into the open day D+1."""
    with time_machine.travel(nairobi(2026, 3, 10, 9), tick=False):
        driver = make_driver(1)
        pay("ME1", "1000")
        pay("ME2", "600")
    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=False):
        pay("ME3", "1000")
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM ledger_ledgerentry WHERE transaction_id = %s",
                [Transaction.objects.get(trans_id="ME2").pk],
            )
    with time_machine.travel(nairobi(2026, 3, 11, 9, 30), tick=False):
        fixed = fix_driver_balance("DRV-112001", date="2026-03-10", auto_fix=True, reason="lost")
    assert fixed["entries_posted"] == 1
    driver.refresh_from_db()
    return driver


# --- the statement -------------------------------------------------------------------------


def test_statement_adds_up_across_a_day_close_with_carried_over_debt(carried_debt: Driver) -> None:
    with time_machine.travel(nairobi(2026, 3, 11, 12), tick=False):
        statement = driver_statement(driver_id="DRV-112001", date_from=D, date_to="2026-03-11")
    first, second = statement.days
    assert (first.business_day, first.state) == (D, "closed")
    assert (first.opening, first.contributions, first.corrections, first.closing) == (
        Decimal("0.00"),
        Decimal("1000.00"),
        Decimal("0.00"),
        Decimal("1000.00"),
    )
    assert (first.recorded_closing_balance, first.target, first.target_met) == (
        Decimal("1000.00"),
        Decimal("3000.00"),
        False,
    )
    assert first.carried_over == Decimal("-2000.00") and first.cached_balance is None
    assert (second.business_day, second.state) == (D1, "open")
    assert (second.opening, second.contributions, second.closing) == (
        Decimal("-2000.00"),  # -(T - C)
        Decimal("200.00"),  # the split saw the debt: 50% of 400
        Decimal("-1800.00"),
    )
    assert second.cached_balance == carried_debt.current_balance == Decimal("-1800.00")
    assert second.recorded_closing_balance is None

    totals = statement.totals
    assert (totals.opening_balance, totals.closing_balance) == (Decimal("0"), Decimal("-1800"))
    assert totals.closing_balance == carried_debt.current_balance
    assert (totals.amount_received, totals.driver_share, totals.target_contribution) == (
        Decimal("2400.00"),
        Decimal("1200.00"),
        Decimal("1200.00"),
    )
    assert totals.carry_over_adjustments == Decimal("-3000.00")  # 1000 closed, -2000 opened
    assert totals.transactions_count == 2 and totals.corrections == 0
    assert_adds_up(statement)
    assert statement.problems == []

    st1, st2 = statement.transactions
    assert (st1.trans_id, st1.business_day, st1.entry_amount) == ("ST1", D, Decimal("1000.00"))
    assert st1.received_at == nairobi(2026, 3, 10, 9)
    assert st1.received_at.utcoffset() == dt.timedelta(hours=3)  # shown in Nairobi time
    assert (st1.payout_amount, st1.payout_state) == (Decimal("1000.00"), "held")
    assert (st2.trans_id, st2.driver_share, st2.target_contribution) == (
        "ST2",
        Decimal("200.00"),
        Decimal("200.00"),
    )
    kinds = [(e.business_day, e.kind, e.amount) for e in statement.entries]
    assert kinds == [
        (D, "contribution", Decimal("1000.00")),
        (D1, "opening", Decimal("-2000.00")),
        (D1, "contribution", Decimal("200.00")),
    ]
    answer = statement.as_dict()
    assert (answer["from"], answer["to"], answer["closing_balance"]) == (
        D,
        D1,
        Decimal("-1800.00"),
    )


def test_default_range_is_the_open_day_and_a_single_day_range(carried_debt: Driver) -> None:
    with time_machine.travel(nairobi(2026, 3, 11, 12), tick=False):
        default = driver_statement(driver_id=" drv-112001 ")
        closed_day = driver_statement(driver_id="DRV-112001", date_to=D)
    assert (default.date_from, default.date_to, default.open_day) == (D1, D1, D1)
    assert (default.opening_balance, default.closing_balance) == (
        Decimal("-2000.00"),
        Decimal("-1800.00"),
    )
    assert (closed_day.date_from, closed_day.date_to) == (D, D)
    assert closed_day.closing_balance == Decimal("1000.00")
    assert closed_day.totals.carry_over_adjustments == 0
    assert_adds_up(default)
    assert_adds_up(closed_day)


def test_days_before_the_driver_and_after_an_unrolled_open_day(carried_debt: Driver) -> None:
    # The worker is down: on D+3 the driver is still on D+1, which nobody has closed yet.
    with time_machine.travel(nairobi(2026, 3, 13, 12), tick=False):
        statement = driver_statement(driver_id="DRV-112001", date_from="2026-03-09", date_to=None)
        later = driver_statement(
            driver_id="DRV-112001", date_from="2026-03-09", date_to="2026-03-13"
        )
    assert statement.date_to == D1  # the driver's open day, not the calendar's
    assert [d.state for d in later.days] == ["not recorded", "closed", "open", "pending", "pending"]
    assert later.days[0].closing == 0 and later.days[-1].closing == 0
    assert_adds_up(later)


def test_a_correction_entry_appears_and_still_adds_up(corrected: Driver) -> None:
    with time_machine.travel(nairobi(2026, 3, 11, 12), tick=False):
        statement = driver_statement(driver_id="DRV-112001", date_from=D, date_to=D1)
    first, second = statement.days
    # D's ledger lost ME2's 300: it no longer sums to the balance recorded at the close.
    assert (first.contributions, first.closing, first.recorded_closing_balance) == (
        Decimal("500.00"),
        Decimal("500.00"),
        Decimal("800.00"),
    )
    assert (second.opening, second.contributions, second.corrections, second.closing) == (
        Decimal("-2200.00"),
        Decimal("500.00"),
        Decimal("300.00"),
        Decimal("-1400.00"),
    )
    assert second.closing == second.cached_balance == corrected.current_balance
    (correction,) = [e for e in statement.entries if e.kind == "correction"]
    assert correction.business_day == D1 and correction.amount == Decimal("300.00")
    assert "missing contribution of ME2" in correction.note and correction.trans_id is None
    assert statement.totals.corrections == Decimal("300.00")
    assert statement.closing_balance == corrected.current_balance
    assert_adds_up(statement)
    # ME2's contribution is in the ledger now (as a correction on the open day): the statement
    # says so, as reconciliation does; what stays true is that D closed at 800 without it.
    assert statement.problems == [
        "2026-03-10: closed at 800.00 but its ledger entries now sum to 500.00",
    ]
    with time_machine.travel(nairobi(2026, 3, 11, 12), tick=False):
        assert fix_driver_balance("DRV-112001", date=D)["problems"] == []
    me2 = next(t for t in statement.transactions if t.trans_id == "ME2")
    assert me2.entry_amount is None


def test_csv_parses_back_line_by_line_and_the_running_balance_ends_at_the_closing(
    corrected: Driver,
) -> None:
    with time_machine.travel(nairobi(2026, 3, 11, 12), tick=False):
        statement = driver_statement(driver_id="DRV-112001", date_from=D, date_to=D1)
    text = statement_csv(statement)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    rows = csv_rows(text)
    assert [(r["business_day"], r["kind"], r["reference"]) for r in rows] == [
        ("2026-03-10", "opening", "no carry-over"),
        ("2026-03-10", "payment", "ME1"),
        ("2026-03-10", "payment", "ME2"),
        ("2026-03-10", "closing", "closed: target 3000.00 missed, carried over -2200.00"),
        ("2026-03-11", "opening", "carried over from 2026-03-10"),
        ("2026-03-11", "payment", "ME3"),
        ("2026-03-11", "correction", correction_note(statement)),
        ("2026-03-11", "closing", "open day: balance so far (cached -1400.00)"),
        ("", "total", "2026-03-10..2026-03-11"),
    ]
    for row in rows:
        for column in MONEY_COLUMNS:
            assert MONEY_CELL.fullmatch(row[column]), (row, column)
    amounts = [{c: Decimal(r[c]) for c in MONEY_COLUMNS} for r in rows]
    *lines, total = amounts
    # A spreadsheet sum of the balance changes is the closing balance...
    assert sum(line["balance_change"] for line in lines) == statement.closing_balance
    # ...the running balance ends there, and each day's closing row shows that day's closing.
    assert lines[-1]["running_balance"] == statement.closing_balance == Decimal("-1400.00")
    closings = [a for a, r in zip(amounts, rows, strict=True) if r["kind"] == "closing"]
    assert [c["running_balance"] for c in closings] == [d.closing for d in statement.days]
    assert [a["balance_change"] for a in lines] == [
        Decimal("0.00"),  # opening 0
        Decimal("500.00"),
        Decimal("0.00"),  # ME2 lost its entry
        Decimal("0.00"),  # closing row
        Decimal("-2700.00"),  # the close: 500 closed, -2200 opened
        Decimal("500.00"),
        Decimal("300.00"),  # the correction
        Decimal("0.00"),
    ]
    assert (total["amount"], total["driver_share"], total["target_contribution"]) == (
        Decimal("2600.00"),
        Decimal("1300.00"),
        Decimal("1300.00"),
    )
    assert total["running_balance"] == statement.closing_balance
    assert rows[1]["time"] == "2026-03-10 09:00:00"  # local time, spreadsheet-friendly
    assert statement_csv_filename(statement) == "statement-DRV-112001-2026-03-10-2026-03-11.csv"


def correction_note(statement: Statement) -> str:
    return next(e.note for e in statement.entries if e.kind == "correction")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"driver_id": "DRV-999999"}, NotFound, "no driver 'DRV-999999'"),
        ({"driver_id": "Driver 1"}, NotFound, "no driver"),  # ids only, not names
        ({"date_from": "2026-03-11", "date_to": "2026-03-10"}, InvalidInput, "is after"),
        ({"date_from": "10/03/2026"}, InvalidInput, "YYYY-MM-DD"),
        ({"date_to": "2026-3-10"}, InvalidInput, "YYYY-MM-DD"),
        ({"date_to": "2026-02-30"}, InvalidInput, "not a real day"),
        ({"date_from": "2025-03-09", "date_to": "2026-03-10"}, InvalidInput, "367 days"),
        ({"date_to": "2026-03-12"}, InvalidInput, "not a business day yet"),
    ],
)
def test_bad_input_is_a_clear_error(
    carried_debt: Driver, kwargs: dict[str, str], error: type[Exception], message: str
) -> None:
    with time_machine.travel(nairobi(2026, 3, 11, 12), tick=False):
        with pytest.raises(error, match=message):
            driver_statement(**{"driver_id": "DRV-112001", **kwargs})
        with pytest.raises(CommandError, match=message):
            options = {"--from": kwargs.get("date_from"), "--to": kwargs.get("date_to")}
            args = [f"{k}={v}" for k, v in options.items() if v]
            call_command("statement", kwargs.get("driver_id", "DRV-112001"), *args)


def test_a_range_of_366_days_is_allowed(carried_debt: Driver) -> None:
    with time_machine.travel(nairobi(2026, 3, 11, 12), tick=False):
        statement = driver_statement(
            driver_id="DRV-112001", date_from="2025-03-11", date_to="2026-03-11"
        )
    assert len(statement.days) == 366
    assert statement.closing_balance == Decimal("-1800.00")
    assert_adds_up(statement)


def test_the_statement_takes_a_constant_number_of_queries() -> None:
    with time_machine.travel(nairobi(2026, 3, 10, 9), tick=False):
        make_driver(1)
    for n in range(10):  # a payment every day: ten days, nine closes
        with time_machine.travel(nairobi(2026, 3, 10 + n, 9), tick=False):
            pay(f"QC{n}a", "1000")
            pay(f"QC{n}b", "500")
    with time_machine.travel(nairobi(2026, 3, 19, 12), tick=False):
        with CaptureQueriesContext(connection) as two_days:
            short = driver_statement(driver_id="DRV-112001", date_from=D, date_to=D1)
        with CaptureQueriesContext(connection) as ten_days:
            long = driver_statement(driver_id="DRV-112001", date_from=D, date_to="2026-03-19")
    assert len(short.days) == 2 and len(long.days) == 10
    assert len(long.transactions) == 20 and long.problems == []
    assert len(two_days) == len(ten_days) <= 8, [q["sql"] for q in ten_days.captured_queries]
    assert_adds_up(long)
    assert long.closing_balance == Driver.objects.get().current_balance


# --- the CLI -------------------------------------------------------------------------------


def test_cli_prints_writes_csv_and_json(
    carried_debt: Driver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with time_machine.travel(nairobi(2026, 3, 11, 12), tick=False):
        out = io.StringIO()
        call_command("statement", "DRV-112001", "--from", "2026-03-10", stdout=out)
        text = out.getvalue()
        assert "business days 2026-03-10 to 2026-03-11" in text
        assert "= closing balance -1800.00" in text
        assert "carried over -2000.00" in text and "ST1" in text and "ST2" in text

        target = tmp_path / "statement.csv"
        call_command(
            "statement", "DRV-112001", "--from", "2026-03-10", "--csv", str(target), stdout=out
        )
        raw = target.read_bytes()
        assert b"\r\n" in raw
        rows = csv_rows(raw.decode("utf-8"))
        assert rows[-2]["kind"] == "closing" and rows[-2]["running_balance"] == "-1800.00"

        call_command("statement", "DRV-112001", "--csv", "-")
        assert capsys.readouterr().out.startswith(",".join(CSV_HEADER) + "\r\n")

        out = io.StringIO()
        call_command("statement", "DRV-112001", "--from", "2026-03-10", "--json", stdout=out)
        answer = json.loads(out.getvalue(), parse_float=Decimal)
        assert (answer["from"], answer["to"]) == ("2026-03-10", "2026-03-11")
        assert answer["closing_balance"] == Decimal("-1800.00")
        assert answer["days"][1]["opening"] == Decimal("-2000.00")
        assert answer["transactions"][0]["received_at"] == "2026-03-10T09:00:00+03:00"

        with pytest.raises(CommandError, match="cannot write"):
            call_command("statement", "DRV-112001", "--csv", str(tmp_path / "missing" / "x.csv"))


# --- duplicates ----------------------------------------------------------------------------


def deliver(client: Client, trans_id: str, amount: str = "100") -> None:
    payload = confirmation_payload(trans_id=trans_id, amount=amount, account="TUK001")
    response = client.post(
        f"/c2b/{settings.CALLBACK_TOKEN}/confirmation",
        json.dumps(payload),
        content_type="application/json",
    )
    assert response.status_code == 200


@pytest.fixture
def deliveries(client: Client) -> Client:
    """DUP1 three times and DUP2 twice on D, ONCE once, and LATE first on D and again just after
    the close (so on D+1); on D+1 also NEXT twice."""
    with time_machine.travel(nairobi(2026, 3, 10, 9), tick=False):
        make_driver(1)
    for moment, trans_id in [
        ((9, 0), "DUP1"),
        ((9, 1), "DUP1"),
        ((9, 2), "ONCE"),
        ((10, 0), "DUP2"),
        ((10, 30), "DUP1"),
        ((11, 0), "DUP2"),
        ((23, 50), "LATE"),
    ]:
        with time_machine.travel(nairobi(2026, 3, 10, *moment), tick=False):
            deliver(client, trans_id)
    for moment, trans_id in [((0, 10), "LATE"), ((8, 0), "NEXT"), ((8, 5), "NEXT")]:
        with time_machine.travel(nairobi(2026, 3, 11, *moment), tick=False):
            deliver(client, trans_id)
    return client


def test_duplicates_report_counts_and_delivery_times(deliveries: Client) -> None:
    report = duplicates_report(date_from=D, date_to=D)
    assert [(d.trans_id, d.count, d.processed) for d in report.duplicates] == [
        ("DUP1", 3, 1),
        ("DUP2", 2, 1),
        ("LATE", 2, 1),  # listed in the range of its first delivery, with both deliveries
    ]
    dup1 = report.duplicates[0]
    assert [d.received_at for d in dup1.deliveries] == [
        nairobi(2026, 3, 10, 9, 0),
        nairobi(2026, 3, 10, 9, 1),
        nairobi(2026, 3, 10, 10, 30),
    ]
    assert all(d.received_at.tzinfo is not None for d in dup1.deliveries)
    assert [d.state for d in dup1.deliveries] == ["processed", "duplicate", "duplicate"]
    assert (dup1.driver_id, dup1.driver_name, dup1.amount) == (
        "DRV-112001",
        "Driver 1",
        Decimal("100.00"),
    )
    late = report.duplicates[2]
    assert late.deliveries[-1].received_at == nairobi(2026, 3, 11, 0, 10)
    assert report.deliveries == 7
    assert report.since == nairobi(2026, 3, 10, 0, 0)
    assert report.until == nairobi(2026, 3, 11, 0, 0)

    next_day = duplicates_report(date_from=D1, date_to=D1)
    assert [d.trans_id for d in next_day.duplicates] == ["NEXT"]  # LATE is D's, not D+1's
    both = duplicates_report(date_from=D, date_to=D1)
    assert [d.trans_id for d in both.duplicates] == ["DUP1", "DUP2", "LATE", "NEXT"]
    with time_machine.travel(nairobi(2026, 3, 12, 9), tick=False):
        default = duplicates_report()  # the last 7 business days
    assert (default.date_from, default.date_to) == (dt.date(2026, 3, 6), dt.date(2026, 3, 12))
    assert len(default.duplicates) == 4


def test_duplicates_report_takes_a_constant_number_of_queries(deliveries: Client) -> None:
    with CaptureQueriesContext(connection) as one_day:
        assert len(duplicates_report(date_from=D, date_to=D).duplicates) == 3
    with CaptureQueriesContext(connection) as two_days:
        assert len(duplicates_report(date_from=D, date_to=D1).duplicates) == 4
    assert len(one_day) == len(two_days) <= 3


def test_duplicates_cli_and_bad_input(deliveries: Client) -> None:
    out = io.StringIO()
    call_command("duplicates", "--from", "2026-03-10", "--to", "2026-03-10", stdout=out)
    text = out.getvalue()
    assert "3 TransID(s) delivered more than once (7 deliveries)" in text
    assert "DUP1: 3 deliveries, DRV-112001 100.00 KSH" in text
    assert "  2026-03-10 09:01:00 duplicate" in text
    out = io.StringIO()
    call_command("duplicates", "--from", "2026-03-11", "--to", "2026-03-11", "--json", stdout=out)
    answer = json.loads(out.getvalue(), parse_float=Decimal)
    (next_dup,) = answer["duplicates"]
    assert (next_dup["trans_id"], next_dup["count"], next_dup["processed"]) == ("NEXT", 2, 1)
    assert [d["received_at"] for d in next_dup["deliveries"]] == [
        "2026-03-11T08:00:00+03:00",
        "2026-03-11T08:05:00+03:00",
    ]
    for args, message in [
        (["--from", "2026-03-11", "--to", "2026-03-10"], "is after"),
        (["--from", "11.03.2026"], "YYYY-MM-DD"),
        (["--from", "2024-01-01", "--to", "2026-03-10"], "366"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command("duplicates", *args)


# --- the admin -----------------------------------------------------------------------------


def test_admin_statement_and_duplicates_views_render_for_a_superuser(
    corrected: Driver, client: Client
) -> None:
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    with time_machine.travel(nairobi(2026, 3, 11, 12), tick=False):
        change = client.get(f"/admin/fleet/driver/{corrected.pk}/change/")
        assert change.status_code == 200
        assert f"/admin/fleet/driver/{corrected.pk}/statement/" in change.content.decode()

        url = f"/admin/fleet/driver/{corrected.pk}/statement/"
        page = client.get(url, {"from": "2026-03-10", "to": "2026-03-11"})
        assert page.status_code == 200
        html = page.content.decode()
        assert "= closing balance -1400.00 KSH" in html
        assert "missing contribution of ME2" in html and "closed at 800.00" in html

        download = client.get(url, {"from": "2026-03-10", "to": "2026-03-11", "format": "csv"})
        assert download["Content-Type"].startswith("text/csv")
        assert "statement-DRV-112001-2026-03-10-2026-03-11.csv" in download["Content-Disposition"]
        assert csv_rows(download.content.decode("utf-8"))[-1]["running_balance"] == "-1400.00"

        bad = client.get(url, {"from": "2026-03-11", "to": "2026-03-10"}, follow=True)
        assert bad.status_code == 200 and "is after" in bad.content.decode()

        deliver(client, "ADM1")
        deliver(client, "ADM1")
        report = client.get("/admin/mpesa/callback/duplicates/", {"from": "2026-03-11"})
        assert report.status_code == 200
        assert "ADM1" in report.content.decode() and "duplicate" in report.content.decode()


def test_admin_views_need_the_view_permission(corrected: Driver, client: Client) -> None:
    client.force_login(User.objects.create_user("nobody", password="pw", is_staff=True))
    with time_machine.travel(nairobi(2026, 3, 11, 12), tick=False):
        assert client.get(f"/admin/fleet/driver/{corrected.pk}/statement/").status_code == 403
        assert client.get("/admin/mpesa/callback/duplicates/").status_code == 403
