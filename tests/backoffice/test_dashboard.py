"""The dashboard: each figure equals the database, and the admin list it links to shows the
same count (and sum); the reports: stored once, the same when built again, emailed, CSV."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from tests.support.factories import edit_balance_by_sql, make_fleet, pay
from tuktuk.backoffice.dashboard import Dashboard, dashboard_build
from tuktuk.backoffice.portal.models import ProblemReport
from tuktuk.backoffice.portal.services import problem_report_open, problem_report_resolve
from tuktuk.backoffice.reports.models import ReportKind, StoredReport
from tuktuk.backoffice.reports.services import (
    daily_report_build,
    report_csv,
    report_email_send,
    report_store,
    reports_due_store,
    weekly_report_build,
)
from tuktuk.core.money import money
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.day_close import current_business_day, day_close_run
from tuktuk.ledger.models import LedgerEntry, Transaction
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.payouts.models import Payout, PayoutState

pytestmark = pytest.mark.usefixtures("business_hours")

AMOUNT_FIELD = {
    "ledger_transaction": "amount",
    "ledger_uncapturedpayment": "amount",
    "ledger_ledgerentry": "amount",
    "payouts_payout": "amount",
}


def known_day() -> None:
    """Four drivers, eight fares, an uncaptured payment, payouts in every state, a balance
    edited around the ledger and a driver two misses down."""
    make_fleet(4)
    FleetSettings.objects.update(global_daily_target=Decimal("1000"))
    for n, (account, amount) in enumerate(
        [
            ("TUK001", 1500),
            ("TUK001", 700),
            ("TUK002", 300),
            ("TUK002", 250),
            ("TUK003", 155),
            ("TUK001", 90),
            ("TUK002", 1500),
            ("TUK003", 40),
        ]
    ):
        pay(f"DASH{n:06d}", amount, account)
    pay("DASHUNCAPT", 500, "NOSUCH")
    payouts = list(Payout.objects.order_by("pk").values_list("pk", flat=True))
    for pk, state in zip(
        payouts,
        [PayoutState.COMPLETED, PayoutState.PENDING, PayoutState.UNKNOWN, PayoutState.FAILED],
        strict=False,
    ):
        Payout.objects.filter(pk=pk).update(state=state)
    Driver.objects.filter(driver_id="DRV-112003").update(consecutive_misses=2)
    edit_balance_by_sql(Driver.objects.get(driver_id="DRV-112004"), "25")
    # Two problems reported from the portal, one already resolved.
    for note in ("my 1500 is missing", "wrong balance"):
        problem_report_open(driver=Driver.objects.get(driver_id="DRV-112001"), note=note)
    first = ProblemReport.objects.order_by("pk").first()
    assert first is not None
    problem_report_resolve(report_id=first.pk, actor="boss", resolution="found it")


def inbox_callbacks() -> None:
    """Stored C2B confirmations with known latencies: four posted today (0.4 s, 1.5 s, 1.5 s
    and 12 s), one yesterday (3 s), a rejected one and a B2C result (not credits), and two
    waiting (one received 5 minutes ago, one failed). Not in known_day: a day with confirmations
    waiting does not close (the reports' tests close it)."""
    now = timezone.now()
    today = now - dt.timedelta(hours=1)
    yesterday = now - dt.timedelta(hours=14)  # 20:00 the day before (the clock is at 10:00)
    for at, seconds, state, kind in [
        (today, 0.4, CallbackState.PROCESSED, CallbackKind.C2B_CONFIRMATION),
        (today, 1.5, CallbackState.PROCESSED, CallbackKind.C2B_CONFIRMATION),
        (today, 1.5, CallbackState.DUPLICATE, CallbackKind.C2B_CONFIRMATION),
        (today, 12.0, CallbackState.UNMATCHED, CallbackKind.C2B_CONFIRMATION),
        (yesterday, 3.0, CallbackState.PROCESSED, CallbackKind.C2B_CONFIRMATION),
        (today, 900.0, CallbackState.REJECTED, CallbackKind.C2B_CONFIRMATION),
        (today, 900.0, CallbackState.PROCESSED, CallbackKind.B2C_RESULT),
    ]:
        Callback.objects.create(
            kind=kind,
            state=state,
            received_at=at - dt.timedelta(seconds=seconds),
            processed_at=at,
        )
    Callback.objects.create(
        kind=CallbackKind.C2B_CONFIRMATION,
        state=CallbackState.RECEIVED,
        received_at=now - dt.timedelta(minutes=5),
    )
    Callback.objects.create(
        kind=CallbackKind.C2B_CONFIRMATION,
        state=CallbackState.FAILED,
        received_at=now - dt.timedelta(seconds=20),
        processed_at=now - dt.timedelta(seconds=19),
        error="OperationalError: deadlock",
    )


@pytest.fixture
def boss(client: Client, db: None) -> Client:
    User.objects.create_superuser("boss", "boss@example.com", "pw-for-tests")
    client.login(username="boss", password="pw-for-tests")
    return client


def list_of(client: Client, url: str) -> tuple[int, Decimal | None]:
    """(count, sum of the amount column) of the admin list at `url`, as the admin computed it."""
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    changelist = page.context["cl"]
    name = f"{changelist.opts.app_label}_{changelist.opts.model_name}"
    field = AMOUNT_FIELD.get(name)
    total = None
    if field:
        total = money(changelist.queryset.aggregate(total=Sum(field))["total"] or 0)
    return changelist.result_count, total


def test_each_figure_equals_the_database(db: None) -> None:
    known_day()
    inbox_callbacks()
    assert dashboard_build().figure("driver_problems").count == 1  # the one still open
    today = current_business_day(FleetSettings.load())
    board = dashboard_build()
    assert board.day == today
    payments = Transaction.objects.filter(
        business_day=today, status="Completed", transaction_type="Payment"
    )
    assert board.figure("collections").count == payments.count() == 8
    assert board.figure("collections").amount == money(payments.aggregate(s=Sum("amount"))["s"])
    assert board.figure("contributions").amount == money(
        LedgerEntry.objects.filter(business_day=today, kind="contribution").aggregate(
            s=Sum("amount")
        )["s"]
    )
    assert board.figure("shares_paid").count == 1
    assert board.figure("shares_pending").count == 1
    assert board.figure("shares_unknown").count == 1
    assert board.figure("shares_held").count == 4
    assert board.figure("payouts_needing_operator").count == 2
    assert board.figure("uncaptured").count == 1
    assert board.figure("uncaptured").amount == Decimal("500.00")
    # DRV-112001 (2290 collected) and DRV-112002 (2050) contribute over 1000.
    at_target = {d.driver_id for d in board.targets.at_target}
    assert at_target == {"DRV-112001", "DRV-112002"}
    assert {d.driver_id for d in board.targets.at_risk} == {"DRV-112003"}
    # DRV-112004 was never paid: no balance is kept for them yet, on the open day as at the close.
    assert board.figure("below_target").count == 1
    assert board.discrepancy_drivers == ["DRV-112004"]
    assert board.figure("vehicles_active").count == 4
    assert board.figure("vehicles_available").count == 0  # all four are assigned
    assert board.targets.achievement_rate == Decimal("66.7")
    # Credit latency of today's confirmations; the waiting ones, whatever the day.
    credited = board.figure("credited")
    assert credited.count == 4
    assert board.latency is not None
    assert (board.latency.p50_seconds, board.latency.p99_seconds) == (2.0, 12.0)
    assert board.latency.max_seconds == 12.0
    assert credited.headline == "p50 ≤ 2 s\np99 ≤ 12 s"
    assert credited.note == "max 12 s · 4 credited"
    unposted = board.figure("unposted")
    assert unposted.count == 2
    assert unposted.problem  # one has waited 5 minutes, one failed
    assert unposted.note.startswith("oldest 5 min")
    assert unposted.note.endswith("· 1 failed, to retry")


def test_every_figure_links_to_a_list_that_shows_it(boss: Client) -> None:
    known_day()
    inbox_callbacks()
    board = dashboard_build()
    checked = 0
    for figure in board.figures:
        if figure.key == "deposits_held":
            page = boss.get(figure.url)
            assert page.status_code == 200
            continue
        count, total = list_of(boss, figure.url)
        assert count == figure.count, figure
        if figure.amount is not None and total is not None:
            assert total == figure.amount, figure
        checked += 1
    assert checked == len(board.figures) - 1


def test_the_dashboard_page_shows_every_figure_and_the_chart_data(boss: Client) -> None:
    known_day()
    inbox_callbacks()
    page = boss.get("/admin/")
    assert page.status_code == 200
    html = page.content.decode()
    board: Dashboard = page.context["dashboard"]
    for figure in board.figures:
        assert f'data-figure="{figure.key}" data-count="{figure.count}"' in html
    assert "p50 ≤ 2 s<br>p99 ≤ 12 s" in html
    assert "[!] Confirmations waiting to post" in html
    charts = page.context["charts"]
    assert charts["revenue_cents"]["values"][-1] == int(board.figure("collections").amount * 100)
    assert sum(charts["hourly_cents"]["values"]) == int(board.figure("collections").amount * 100)
    assert "https://" not in html.split("<script", 1)[1].split("</script>", 1)[0]
    assert "chart.umd.min.js" in html


def test_a_day_chooser_and_the_root_redirect(boss: Client) -> None:
    known_day()
    inbox_callbacks()
    yesterday = current_business_day(FleetSettings.load()) - dt.timedelta(days=1)
    page = boss.get(f"/admin/?day={yesterday}")
    assert page.context["dashboard"].day == yesterday
    assert page.context["dashboard"].figure("collections").count == 0
    # Yesterday's credits: the one posted then (3 s), its list showing it; the waiting ones
    # are counted now, whatever the day shown.
    credited = page.context["dashboard"].figure("credited")
    assert (credited.count, credited.headline) == (1, "p50 ≤ 3 s\np99 ≤ 3 s")
    assert list_of(boss, credited.url)[0] == 1
    assert page.context["dashboard"].figure("unposted").count == 2
    bad = boss.get("/admin/?day=nonsense")
    assert bad.status_code == 200
    assert boss.get("/").url == "/admin/"
    anonymous = Client().get("/admin/", follow=True)
    assert anonymous.redirect_chain[-1][0].startswith("/admin/login/")


def test_the_api_docs_come_from_our_static_files(client: Client, db: None) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/backoffice/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()


def closed_day_setup() -> dt.date:
    """The known day, closed: the clock moves on to the next business day."""
    known_day()
    return current_business_day(FleetSettings.load())


def test_daily_report_is_stored_once_and_built_again_the_same(db: None) -> None:
    import time_machine

    from tests.support.clock import nairobi

    day = closed_day_setup()
    with time_machine.travel(nairobi(2026, 3, 11, 10), tick=True):
        day_close_run()
        stored = reports_due_store(actor="test")
        assert [r.kind for r in stored] == [ReportKind.DAILY]
        assert reports_due_store(actor="test") == []  # once
        report = StoredReport.objects.get(kind=ReportKind.DAILY, period_start=day)
        again = daily_report_build(day=day).as_data()
        assert again == report.data
        assert report.data["transactions"] == 8
        assert report.data["revenue"] == "4535.00"
        assert report.data["drivers_at_target"] == 2
        assert report.data["achievement_rate"] == "66.7"
        assert report.data["drivers_below_target"] == ["DRV-112003 Driver 3"]
        assert report.data["drivers_at_risk"] == ["DRV-112003 Driver 3"]
        assert report.data["vehicles_active"] == 4
        csv_text = report_csv(report)
        assert csv_text.splitlines()[0].startswith("day,revenue,driver_share")
        assert "4535.00" in csv_text


def test_weekly_report_has_daily_contributions_per_driver(db: None) -> None:
    import time_machine

    from tests.support.clock import nairobi

    day = closed_day_setup()  # Tuesday 2026-03-10
    monday = day - dt.timedelta(days=day.weekday())
    with time_machine.travel(nairobi(2026, 3, 16, 10), tick=True):
        day_close_run()
        weekly = weekly_report_build(start=monday)
        first, _ = report_store(kind=ReportKind.WEEKLY, start=monday, actor="test")
        assert weekly.as_data() == first.data
        row = next(r for r in first.data["rows"] if r["driver_id"] == "DRV-112001")
        contributed = LedgerEntry.objects.filter(
            driver__driver_id="DRV-112001", business_day=day, kind="contribution"
        ).aggregate(s=Sum("amount"))["s"]
        assert row["contributions"][day.weekday()] == str(money(contributed))


def test_report_email_goes_to_the_alert_recipients(db: None, smtp) -> None:  # type: ignore[no-untyped-def]
    import time_machine

    from tests.support.clock import nairobi

    closed_day_setup()
    FleetSettings.objects.update(alert_recipients="boss@example.com")
    with time_machine.travel(nairobi(2026, 3, 11, 10), tick=True):
        day_close_run()
        (report,) = reports_due_store(actor="test")
        assert report_email_send(report=report) is True
        assert report_email_send(report=report) is False  # once
    inbox, _ = smtp
    assert len(inbox.messages) == 1
    _sender, recipients, content = inbox.messages[0]
    assert "boss@example.com" in recipients and "ops@fleet.example" in recipients
    assert b"Subject: Daily report" in content
    assert b"tuktuk-daily-report-" in content  # the CSV attachment
