"""The driver portal in a real browser (Playwright driving Debian's headless Chromium) at a
360 px wide viewport, against our live server (gunicorn) and the test database: logging in,
balances equal to the database after fares posted over HTTP (and arriving on the open page),
the statement's CSV download, a problem report, the lockout, another driver's ids in the URL.
Screenshots go to the test's tmp_path. No page may ask another host for anything."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.c2b import confirmation_payload
from tests.support.clock_at import children_now
from tests.support.factories import make_driver
from tests.support.live_server import LiveServer
from tuktuk.backoffice.portal.models import DriverAccount, ProblemReport
from tuktuk.backoffice.portal.services import driver_pin_set
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.models import Transaction
from tuktuk.ledger.statement import driver_statement
from tuktuk.ledger.statement_csv import statement_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live_server_process]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE_WIDTH = 360
TEMPLATES = Path(__file__).resolve().parents[3] / "src/tuktuk/backoffice/portal/templates"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    # Playwright's sync API keeps an event loop running in this thread while the browser is
    # open; the ORM calls the tests (and pytest-django's teardown) make meanwhile are plain
    # synchronous ones, which Django refuses in a thread with a running loop unless told.
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield launched
            launched.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def page(browser: Browser, live_server_proc: LiveServer) -> Iterator[Page]:
    context = browser.new_context(
        base_url=live_server_proc.url,
        viewport={"width": PHONE_WIDTH, "height": 760},
        accept_downloads=True,
    )
    hosts: set[str] = set()
    context.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    tab = context.new_page()
    yield tab
    context.close()
    assert hosts <= {urlsplit(live_server_proc.url).netloc}, f"requests to other hosts: {hosts}"


def driver_with_pin(number: int, pin: str) -> Driver:
    driver = make_driver(number)
    driver_pin_set(driver_id=driver.driver_id, pin=pin, actor="root")
    DriverAccount.objects.filter(driver=driver).update(must_change_pin=False)
    return driver


def post_fare(server: LiveServer, trans_id: str, amount: str, account: str = "TUK001") -> None:
    body = confirmation_payload(
        trans_id=trans_id, amount=amount, account=account, msisdn="254711222333"
    )
    answer = httpx.post(server.c2b_url("confirmation"), json=body, timeout=30)
    assert answer.status_code == 200, answer.text


def log_in(page: Page, phone: str, pin: str, shot: Path | None = None) -> None:
    page.goto("/portal/login")
    page.fill("#id_phone", phone)
    page.fill("#id_pin", pin)
    if shot:
        page.screenshot(path=str(shot), full_page=True)
    page.click("main button[type=submit]")


def fits_the_phone(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH, f"the page is {width} px wide: it scrolls sideways"


def test_log_in_see_the_balances_of_the_database_and_download_the_statement(
    page: Page, live_server_proc: LiveServer, tmp_path: Path
) -> None:
    driver = driver_with_pin(1, "4812")
    make_driver(2)
    FleetSettings.objects.update(sms_reminder_times="")
    log_in(page, "0700 000 001", "4812", shot=tmp_path / "1-login.png")
    page.wait_for_selector("#today section[data-balance]")
    for n, amount in enumerate(("150", "420", "1000")):
        post_fare(live_server_proc, f"BRW{n:07d}", amount)
    page.reload()
    section = page.locator("#today section[data-balance]")
    driver.refresh_from_db()
    target = driver.effective_target(FleetSettings.load())
    assert Decimal(section.get_attribute("data-balance")) == driver.current_balance
    assert Decimal(section.get_attribute("data-left")) == target - driver.current_balance
    assert page.inner_text("#balance") == f"{driver.current_balance:,.2f}"
    assert (
        page.locator("#fares li").count() == Transaction.objects.filter(driver=driver).count() == 3
    )
    fits_the_phone(page)
    page.screenshot(path=str(tmp_path / "2-today.png"), full_page=True)

    # A fare arriving while the page is open shows up without a reload (the page's refresh,
    # prompted here instead of waiting its 20 seconds).
    post_fare(live_server_proc, "BRW0000009", "200")
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_selector('li[data-trans-id="BRW0000009"]', timeout=15000)
    driver.refresh_from_db()
    assert page.inner_text("#balance") == f"{driver.current_balance:,.2f}"

    # The statement for a range of days, and its CSV.
    page.click("nav >> text=Statement")
    today = children_now().date()  # the live server's business day (see children_now)
    since = today - dt.timedelta(days=2)
    page.fill("#id_from", since.isoformat())
    page.fill("#id_to", today.isoformat())
    page.click("main button[type=submit]")
    page.wait_for_selector("#csv")
    assert page.inner_text("#st-closing") == f"{driver.current_balance:,.2f}"
    fits_the_phone(page)
    page.screenshot(path=str(tmp_path / "3-statement.png"), full_page=True)
    with page.expect_download() as download_info:
        page.click("#csv")
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(str(saved))
    assert saved.name == f"statement-DRV-112001-{since}-{today}.csv"
    expected = statement_csv(
        driver_statement(driver_id="DRV-112001", date_from=since, date_to=today)
    )
    assert saved.read_bytes().decode() == expected

    # Report a problem.
    page.click("nav >> text=Today")
    page.click("text=Report a problem")
    page.fill("#id_note", "The 420 fare is missing its payout")
    page.click("main button[type=submit]")
    page.wait_for_selector("text=Sent. The fleet office will look at it.")
    page.screenshot(path=str(tmp_path / "4-problem.png"), full_page=True)
    report = ProblemReport.objects.get()
    assert report.driver == driver and report.balance_shown == driver.current_balance


def test_failed_pins_lock_the_number(page: Page, tmp_path: Path) -> None:
    driver_with_pin(1, "4812")
    for _ in range(4):
        log_in(page, "0700000001", "1357")
        page.wait_for_selector("text=That number and PIN do not match")
    log_in(page, "0700000001", "1357")
    page.wait_for_selector("text=Too many wrong tries")
    log_in(page, "0700000001", "4812")  # the right PIN, too late
    page.wait_for_selector("text=Too many wrong tries")
    fits_the_phone(page)
    page.screenshot(path=str(tmp_path / "5-locked.png"), full_page=True)
    assert "/portal/login" in page.url


def test_another_drivers_ids_in_the_address_bar_show_nothing(
    page: Page, live_server_proc: LiveServer
) -> None:
    driver_with_pin(1, "4812")
    driver_with_pin(2, "5937")
    post_fare(live_server_proc, "OTHER00001", "500", account="TUK002")
    other_report = ProblemReport.objects.create(
        driver=Driver.objects.get(driver_id="DRV-112002"),
        note="Driver 2 private note",
        business_day=timezone.localdate(),
        balance_shown=0,
        left_to_target_shown=0,
    )
    log_in(page, "0700000001", "4812")
    page.wait_for_selector("#today")
    for path in (
        "/portal/fares/OTHER00001",
        f"/portal/problems/{other_report.pk}",
        "/portal/problems/new?fare=OTHER00001",
        "/api/v1/drivers/DRV-112002/statement",
    ):
        response = page.goto(path)
        assert response.status in (401, 404), (path, response.status)
        text = page.content()
        assert "Driver 2" not in text and "OTHER00001" not in text.replace(path, "")


def test_no_page_names_another_host() -> None:
    for template in TEMPLATES.rglob("*"):
        if template.is_file():
            text = template.read_text()
            assert (
                "http://" not in text
                and "https://" not in text
                and "//" not in text.replace("://", "").replace("// ", "")
            ), template
