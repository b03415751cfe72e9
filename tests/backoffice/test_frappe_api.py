"""The legacy app's calls (`/api/method/tuktuk_management.api.tuktuk.*`), as the reconciliation
guide writes them, sent over HTTP to our live server with a Frappe API key: form, JSON and
query arguments, Frappe-style booleans, the legacy JSON key for key, and what is refused."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from tests.support.clock import NAIROBI
from tests.support.clock_at import children_now
from tests.support.factories import edit_balance_by_sql, make_driver, pay
from tests.support.live_server import LiveServer
from tuktuk.backoffice.api_auth import api_token_create, frappe_api_key_create
from tuktuk.core.models import Event, EventTitle
from tuktuk.fleet.models import Driver
from tuktuk.ledger.day_close import day_close_run
from tuktuk.ledger.models import BalanceCorrection

pytestmark = pytest.mark.django_db(transaction=True)

MODULE = "/api/method/tuktuk_management.api.tuktuk"
RECONCILE = f"{MODULE}.reconcile_driver_balance"
FIX = f"{MODULE}.fix_driver_balance"
RECONCILE_ALL = f"{MODULE}.reconcile_all_drivers_balances"
# The keys of the legacy answers (tuktuk_management/api/tuktuk.py).
CHECK_KEYS = {
    "driver_name",
    "driver",
    "old_balance",
    "calculated_balance",
    "discrepancy",
    "transactions_count",
    "from_datetime",
    "reconciled",
    "message",
}
FIXED_KEYS = {
    "success",
    "message",
    "driver_name",
    "driver",
    "old_balance",
    "new_balance",
    "adjustment",
    "transactions_count",
}
NO_FIX_KEYS = {"success", "message", "driver_name", "balance"}
MASS_KEYS = {
    "success",
    "total_drivers",
    "drivers_checked",
    "drivers_with_discrepancies",
    "total_discrepancy_amount",
    "results",
    "auto_fixed",
}


@pytest.fixture
def now() -> Iterator[dt.datetime]:
    """10:00 in Nairobi on the live server's today, frozen: its day (not a fixed one), so that the
    live server, on the real clock (or --clock-at's, which has run on since the session began),
    posts into the same business day as this process."""
    today = children_now().date()
    instant = dt.datetime.combine(today, dt.time(10, 0), tzinfo=NAIROBI)
    with time_machine.travel(instant, tick=False):
        yield instant


@pytest.fixture
def keys(people: dict[str, User]) -> dict[str, str]:
    """`api_key:api_secret` per user, as `tuktuk create-api-token USER --frappe` prints it."""
    pairs = {}
    for name, user in people.items():
        _, key, secret = frappe_api_key_create(user=user)
        pairs[name] = f"{key}:{secret}"
    return pairs


def token(pair: str) -> dict[str, str]:
    return {"Authorization": f"token {pair}"}


def exact(response: httpx.Response) -> Any:
    return json.loads(response.text, parse_float=Decimal)


def balance(driver_id: str) -> Decimal:
    return Driver.objects.get(driver_id=driver_id).current_balance


def test_the_guides_calls_verbatim_over_http(
    now: dt.datetime, live_server_proc: LiveServer, keys: dict[str, str]
) -> None:
    for number in (1, 2, 3):
        make_driver(number)
    for n, amount in enumerate(("100", "200", "300")):
        pay(f"GUIDE{n}", amount)  # DRV-112001: 50 + 100 + 150 to the target
    edit_balance_by_sql(Driver.objects.get(driver_id="DRV-112001"), "150")  # a lost update
    manager = token(keys["manager"])
    base = live_server_proc.url

    # frappe.call('…reconcile_driver_balance', driver_name='DRV-112001'), as a form POST.
    answer = httpx.post(base + RECONCILE, data={"driver_name": "DRV-112001"}, headers=manager)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    body = exact(answer)
    assert set(body) == {"message"}
    check = body["message"]
    assert CHECK_KEYS <= set(check)
    assert (check["driver_name"], check["driver"]) == ("DRV-112001", "Driver 1")
    assert (check["old_balance"], check["calculated_balance"], check["discrepancy"]) == (
        Decimal("450.00"),
        Decimal("300.00"),
        Decimal("150.00"),
    )
    assert check["transactions_count"] == 3 and check["reconciled"] is False
    assert check["message"] == "⚠️ DISCREPANCY DETECTED: 150 KSH extra"
    assert check["from_datetime"] == f"{now.date()} 00:00:00"  # the day opened at midnight
    # The same call as a GET with query arguments answers the same.
    got = httpx.get(base + RECONCILE, params={"driver_name": "DRV-112001"}, headers=manager)
    assert exact(got) == body

    # frappe.call({method: …, args: {driver_name: 'DRV-112001', date: '2025-12-07'}}) from the
    # desk: JSON. A day the driver was never on in TukTuk Ledger: nothing recorded, no gap.
    desk = httpx.post(
        base + RECONCILE, json={"driver_name": "DRV-112001", "date": "2025-12-07"}, headers=manager
    )
    assert desk.status_code == 200
    old_day = exact(desk)["message"]
    assert CHECK_KEYS <= set(old_day) and old_day["business_day"] == "2025-12-07"
    assert old_day["discrepancy"] == 0 and old_day["transactions_count"] == 0

    # frappe.call('…fix_driver_balance', driver_name='DRV-112001', auto_fix=True): Python's
    # True arrives as the form value "True". No reason argument: the call is the reason.
    fixed = httpx.post(
        base + FIX, data={"driver_name": "DRV-112001", "auto_fix": "True"}, headers=manager
    )
    assert fixed.status_code == 200, fixed.text
    result = exact(fixed)["message"]
    assert FIXED_KEYS <= set(result)
    assert result["success"] is True
    assert (result["old_balance"], result["new_balance"], result["adjustment"]) == (
        Decimal("450.00"),
        Decimal("300.00"),
        Decimal("150.00"),
    )
    assert result["message"] == "✅ Balance fixed: 450 → 300 (adjusted 150 KSH)"
    assert result["transactions_count"] == 3
    assert balance("DRV-112001") == Decimal("300.00")
    correction = BalanceCorrection.objects.get()
    assert correction.actor == "manager"
    assert correction.reason == (
        "tuktuk_management.api.tuktuk.fix_driver_balance(driver_name='DRV-112001', "
        "auto_fix=True) by manager over /api/method"
    )
    assert Event.objects.filter(title=EventTitle.BALANCE_FIXED, actor="manager").exists()

    # Again (the desk button, JSON true): nothing needs fixing, the legacy no-op answer.
    again = exact(
        httpx.post(
            base + FIX, json={"driver_name": "DRV-112001", "auto_fix": True}, headers=manager
        )
    )["message"]
    assert NO_FIX_KEYS <= set(again)
    assert again["success"] is True and again["balance"] == Decimal("300.00")
    assert again["message"] == "✅ No fix needed - balance is already correct"
    assert again["driver_name"] == "DRV-112001"
    assert BalanceCorrection.objects.count() == 1

    # frappe.call('…reconcile_all_drivers_balances'): every checked driver in results.
    everyone = exact(httpx.post(base + RECONCILE_ALL, headers=manager))["message"]
    assert MASS_KEYS <= set(everyone)
    assert (everyone["total_drivers"], everyone["drivers_checked"]) == (3, 3)
    assert everyone["drivers_with_discrepancies"] == 0 and everyone["auto_fixed"] is False
    assert [row["driver_name"] for row in everyone["results"]] == [
        "DRV-112001",
        "DRV-112002",
        "DRV-112003",
    ]
    for row in everyone["results"]:
        assert CHECK_KEYS | {"fixed"} <= set(row) and row["fixed"] is False

    # Wrong or missing keys are refused, and change nothing.
    for headers in (
        {},
        {"Authorization": "token nope:nope"},
        {"Authorization": f"token {keys['manager'].split(':')[0]}:wrong"},
        {
            "Authorization": "Bearer "
            + api_token_create(user=User.objects.get(username="manager"))[1]
        },
    ):
        refused = httpx.post(
            base + FIX, data={"driver_name": "DRV-112002", "auto_fix": "1"}, headers=headers
        )
        assert refused.status_code == 401, headers
        assert exact(refused)["success"] is False
        assert exact(refused)["exc_type"] == "AuthenticationError"
    # Our JSON API's bearer token is no Frappe key, and a Frappe key no bearer token.
    bearer = api_token_create(user=User.objects.get(username="manager"))[1]
    assert (
        httpx.get(base + RECONCILE, params={"driver_name": "x"}, headers=token(bearer)).status_code
        == 401
    )
    assert (
        httpx.get(
            base + "/api/v1/drivers", headers={"Authorization": f"Bearer {keys['manager']}"}
        ).status_code
        == 401
    )
    # HTTP Basic with the key and secret works as well (some clients send that).
    basic = base64.b64encode(keys["accountant"].encode()).decode()
    seen = httpx.get(
        base + RECONCILE,
        params={"driver_name": "DRV-112002"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert seen.status_code == 200 and exact(seen)["message"]["driver_name"] == "DRV-112002"

    # An accountant reads but fixes nothing.
    edit_balance_by_sql(Driver.objects.get(driver_id="DRV-112002"), "70")
    accountant = token(keys["accountant"])
    denied = httpx.post(
        base + FIX, data={"driver_name": "DRV-112002", "auto_fix": "1"}, headers=accountant
    )
    assert denied.status_code == 403
    assert exact(denied)["exc_type"] == "PermissionError"
    assert "ledger.add_balancecorrection" in exact(denied)["error"]
    assert balance("DRV-112002") == Decimal("70.00")
    peek = httpx.post(base + FIX, data={"driver_name": "DRV-112002"}, headers=accountant)
    assert peek.status_code == 200  # auto_fix absent: a preview, which changes nothing
    assert "preview" in exact(peek)["message"]["message"]
    assert balance("DRV-112002") == Decimal("70.00")

    # What the legacy call reported as a failure: HTTP 200, success false, the legacy wording.
    unknown = httpx.post(base + RECONCILE, data={"driver_name": "DRV-999999"}, headers=manager)
    assert unknown.status_code == 200
    assert exact(unknown) == {
        "message": {
            "success": False,
            "error": "Failed to reconcile balance: no driver 'DRV-999999'",
        }
    }


@pytest.fixture
def world(people: dict[str, User], keys: dict[str, str], business_hours: None) -> dict[str, str]:
    for number in range(1, 5):
        make_driver(number)
        pay(f"W{number}", "100", account=f"TUK{number:03d}")  # 50 to each target
    edit_balance_by_sql(Driver.objects.get(driver_id="DRV-112001"), "150")  # 150 extra
    edit_balance_by_sql(Driver.objects.get(driver_id="DRV-112002"), "-20")  # 20 missing
    edit_balance_by_sql(Driver.objects.get(driver_id="DRV-112003"), "5000")  # above the threshold
    return keys


def call(client: Client, path: str, pair: str | None, **arguments: Any) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"token {pair}"} if pair else {}
    response = client.post(path, json.dumps(arguments), "application/json", **headers)
    return response.status_code, json.loads(response.content, parse_float=Decimal)


def test_mass_fix_keeps_the_sign_and_never_fixes_above_the_review_threshold(
    client: Client, world: dict[str, str]
) -> None:
    status, body = call(client, RECONCILE_ALL, world["manager"], auto_fix=1)
    assert status == 200
    result = body["message"]
    assert MASS_KEYS <= set(result)
    assert result["auto_fixed"] is True and result["drivers_with_discrepancies"] == 3
    assert result["total_discrepancy_amount"] == Decimal("5170.00")
    rows = {row["driver_name"]: row for row in result["results"]}
    assert set(rows) == {"DRV-112001", "DRV-112002", "DRV-112003", "DRV-112004"}
    for row in rows.values():
        assert CHECK_KEYS | {"fixed"} <= set(row)
    assert rows["DRV-112001"]["fixed"] is True
    assert rows["DRV-112001"]["adjustment"] == Decimal("150.00")
    assert rows["DRV-112001"]["message"] == "✅ Balance fixed: 200 → 50 (adjusted 150 KSH)"
    assert rows["DRV-112002"]["fixed"] is True
    assert rows["DRV-112002"]["adjustment"] == Decimal("-20.00")
    assert rows["DRV-112002"]["message"] == "✅ Balance fixed: 30 → 50 (adjusted -20 KSH)"
    assert rows["DRV-112003"]["fixed"] is False and rows["DRV-112003"]["needs_review"] is True
    assert rows["DRV-112003"]["message"] == (
        "⚠️ DISCREPANCY DETECTED: 5000 KSH extra; needs review: above the review threshold of "
        "1000 KSH, which a mass fix never touches (fix it with fix_driver_balance)"
    )
    assert rows["DRV-112004"]["fixed"] is False and rows["DRV-112004"]["discrepancy"] == 0
    assert result["message"] == (
        "3 of 4 driver(s) with discrepancies; 2 fixed; 1 above the review threshold of 1000 KSH, "
        "left for review (TukTuk Ledger never mass-fixes above it)"
    )
    assert balance("DRV-112003") == Decimal("5050.00")
    assert {c.driver.driver_id: c.adjustment for c in BalanceCorrection.objects.all()} == {
        "DRV-112001": Decimal("150.00"),
        "DRV-112002": Decimal("-20.00"),
    }
    # The single fix fixes what the mass fix left, with its sign.
    status, body = call(client, FIX, world["manager"], driver_name="DRV-112003", auto_fix="true")
    assert status == 200 and body["message"]["adjustment"] == Decimal("5000.00")
    assert body["message"]["message"] == "✅ Balance fixed: 5050 → 50 (adjusted 5000 KSH)"


def test_the_carried_over_debt_is_counted_and_the_message_says_so(
    client: Client, people: dict[str, User], keys: dict[str, str]
) -> None:
    with time_machine.travel(dt.datetime(2026, 3, 9, 10, tzinfo=NAIROBI), tick=False):
        make_driver(1)
        pay("DAY1", "2000")  # 1000 of 3000: a miss
    with time_machine.travel(dt.datetime(2026, 3, 10, 10, tzinfo=NAIROBI), tick=False):
        day_close_run()
        status, body = call(client, RECONCILE, keys["accountant"], driver_name="DRV-112001")
    check = body["message"]
    assert status == 200 and check["opening_balance"] == Decimal("-2000.00")
    assert check["calculated_balance"] == check["old_balance"] == Decimal("-2000.00")
    assert check["message"] == (
        "✅ Balance is correct - no discrepancy (TukTuk Ledger counts the -2000 KSH the day "
        "opened with, carried over at the day close or imported; the legacy formula left it out)"
    )


def test_arguments_are_read_as_frappe_reads_them_and_bad_ones_refused(
    client: Client, world: dict[str, str]
) -> None:
    manager = world["manager"]
    # Frappe's booleans: "0"/"false" preview, as the desk's `auto_fix: false` sends it.
    for value in ("0", "false", "False", False, 0, ""):
        status, body = call(client, FIX, manager, driver_name="DRV-112001", auto_fix=value)
        assert status == 200 and body["message"]["preview"] is True, value
    assert balance("DRV-112001") == Decimal("200.00")
    form = client.post(
        FIX,
        {"driver_name": "DRV-112001", "auto_fix": "maybe"},
        HTTP_AUTHORIZATION=f"token {manager}",
    )
    assert json.loads(form.content) == {
        "message": {
            "success": False,
            "error": "Failed to fix balance: auto_fix must be 1, 0, true or false, not 'maybe'",
        }
    }
    status, body = call(client, FIX, manager, driver_name="DRV-112001", autofix=True)
    assert body["message"]["error"] == (
        "Failed to fix balance: unexpected argument(s) autofix; fix_driver_balance takes "
        "driver_name, date, auto_fix, reason"
    )
    status, body = call(client, FIX, manager, auto_fix=True)
    assert body["message"]["error"] == (
        "Failed to fix balance: fix_driver_balance() missing required argument: 'driver_name'"
    )
    status, body = call(client, RECONCILE, manager, driver_name="DRV-112001", date="07-12-2025")
    assert body["message"]["error"].startswith("Failed to reconcile balance: date must be a day")
    assert balance("DRV-112001") == Decimal("200.00")
    assert not BalanceCorrection.objects.exists()
    # Frappe's own argument and cache busters are not the function's.
    status, body = call(client, RECONCILE, manager, driver_name="DRV-112001", cmd="x", _="1")
    assert status == 200 and body["message"]["driver_name"] == "DRV-112001"
    # A reason, which only TukTuk Ledger reads, goes before the call in the audit trail.
    status, body = call(
        client, FIX, manager, driver_name="DRV-112001", auto_fix=True, reason="cash counted"
    )
    assert body["message"]["success"] is True
    assert BalanceCorrection.objects.get().reason.startswith("cash counted (tuktuk_management.")
    status, body = call(client, "/api/method/frappe.auth.get_logged_user", manager)
    assert (status, body) == (200, {"message": "manager"})

    headers = {"HTTP_AUTHORIZATION": f"token {manager}"}
    assert client.get(f"{MODULE}.delete_everything", **headers).status_code == 404
    assert client.put(RECONCILE, **headers).status_code == 405
    broken = client.post(RECONCILE, "{not json", "application/json", **headers)
    assert broken.status_code == 400 and json.loads(broken.content)["success"] is False
    listed = client.post(RECONCILE, "[1]", "application/json", **headers)
    assert listed.status_code == 400
