"""The JSON API (/api/v1/) through Django's test client, the console script and a real server."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import HttpResponse
from django.test import Client

import tuktuk
from tests.support import live_server
from tests.support.factories import make_driver, make_operator, pay
from tests.support.live_server import LiveServer, free_port, live_server_process
from tuktuk.backoffice import api as api_module
from tuktuk.backoffice import legacy as reconciliation
from tuktuk.backoffice.api_auth import api_token_create, api_tokens_revoke
from tuktuk.backoffice.models import ApiToken
from tuktuk.core import events
from tuktuk.core.models import Event
from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import BalanceCorrection

API = "/api/v1"
# Every endpoint that needs a token, with a body that would change money if it were accepted.
PROTECTED = [
    ("get", "/drivers", None),
    ("get", "/drivers/DRV-112001", None),
    ("get", "/drivers/DRV-112001/reconciliation", None),
    ("post", "/drivers/DRV-112001/fix-balance", {"auto_fix": True, "reason": "sneaky"}),
    ("post", "/reconciliation", {"auto_fix": True, "reason": "sneaky"}),
    ("get", "/events", None),
]


# --- helpers -------------------------------------------------------------------------------


def set_balance(driver: Driver, balance: str) -> None:
    # Around the ORM's posting path, as a stray script or a lost update would.
    Driver.objects.filter(pk=driver.pk).update(current_balance=Decimal(balance))


def call(
    client: Client,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    raw: str | bytes | None = None,
    authorization: str | None = None,
) -> HttpResponse:
    headers = {}
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    if method == "get":
        return client.get(API + path, **headers)
    data = raw if raw is not None else json.dumps(body if body is not None else {})
    return client.post(API + path, data=data, content_type="application/json", **headers)


def exact(response: HttpResponse) -> Any:
    """The JSON body with every number as a Decimal, so a string amount cannot pass as one."""
    assert response["Content-Type"].startswith("application/json"), response.content
    return json.loads(response.content, parse_float=Decimal)


def is_number(value: Any) -> bool:
    return isinstance(value, Decimal | int) and not isinstance(value, bool)


def make_user(username: str, *, superuser: bool = False, active: bool = True) -> User:
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", "pw")
    return User.objects.create_user(username, f"{username}@example.com", "pw", is_active=active)


@pytest.fixture
def boss_token(db: None) -> str:
    """A superuser's token: has ledger.add_balancecorrection."""
    _, raw = api_token_create(user=make_user("boss", superuser=True), name="tests")
    return raw


@pytest.fixture
def clerk_token(db: None) -> str:
    """A staff member without the permission to fix balances."""
    _, raw = api_token_create(user=make_user("clerk"))
    return raw


@pytest.fixture
def broken_driver(db: None) -> Driver:
    """DRV-112001 with 150 KSH contributed (two payments) and a cached balance of 300."""
    driver = make_driver(1)
    pay("QA1", "100")
    pay("QA2", "200")
    set_balance(driver, "300")
    return driver


# --- authentication ------------------------------------------------------------------------


def test_every_endpoint_refuses_missing_wrong_and_revoked_tokens(
    client: Client, broken_driver: Driver, boss_token: str
) -> None:
    revoked_token, revoked_raw = api_token_create(user=User.objects.get(username="boss"))
    api_tokens_revoke(token_ids=[revoked_token.pk], actor="tests")
    _, inactive_raw = api_token_create(user=make_user("gone"))
    User.objects.filter(username="gone").update(is_active=False)
    attempts: list[dict[str, str | None]] = [
        {},
        {"token": "not-a-token"},
        {"token": boss_token[:-1]},
        {"token": revoked_raw},
        {"token": inactive_raw},
        {"token": ""},
        {"authorization": f"Token {boss_token}"},  # wrong scheme
        {"authorization": boss_token},  # no scheme at all
    ]
    events_before = Event.objects.count()
    for method, path, body in PROTECTED:
        for attempt in attempts:
            response = call(client, method, path, body=body, **attempt)  # type: ignore[arg-type]
            assert response.status_code == 401, (path, attempt, response.content)
            assert exact(response) == {"detail": "a valid bearer token is required"}
            assert response["WWW-Authenticate"].startswith("Bearer")
    broken_driver.refresh_from_db()
    assert broken_driver.current_balance == Decimal("300.00")
    assert not BalanceCorrection.objects.exists()
    assert Event.objects.count() == events_before  # not even a "discrepancy detected"
    # ...and the real token does work, so the 401s were about the tokens.
    assert call(client, "get", "/drivers", boss_token).status_code == 200


def test_a_revoked_token_stops_working(client: Client, db: None) -> None:
    token, raw = api_token_create(user=make_user("kim"))
    assert call(client, "get", "/drivers", raw).status_code == 200
    assert api_tokens_revoke(token_ids=[token.pk], actor="tests") == 1
    assert api_tokens_revoke(token_ids=[token.pk], actor="tests") == 0  # already revoked
    assert call(client, "get", "/drivers", raw).status_code == 401
    assert Event.objects.filter(title="API Token Revoked").count() == 1


def test_create_api_token_prints_a_working_token_and_stores_only_its_hash(
    client: Client, db: None
) -> None:
    make_user("alice")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_api_token", "alice", "--name", "reporting", "--user", make_operator(),
        stdout=out, stderr=err,
    )  # fmt: skip
    raw = out.getvalue().strip()
    assert len(raw) >= 40 and "\n" not in raw
    assert raw not in err.getvalue() and "shown only this once" in err.getvalue()

    response = call(client, "get", "/drivers", raw)
    assert response.status_code == 200

    row = ApiToken.objects.get()
    assert row.user.username == "alice" and row.name == "reporting"
    assert row.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert row.prefix == raw[:8]
    assert row.last_used_at is not None and row.revoked_at is None
    stored = [str(getattr(row, f.attname)) for f in ApiToken._meta.concrete_fields]
    assert not any(raw in value for value in stored), stored
    # Nor in the audit trail.
    assert not any(raw in json.dumps(e.data) + e.message for e in Event.objects.all())


def test_create_api_token_for_an_unknown_user_is_an_error(db: None) -> None:
    make_operator()
    with pytest.raises(CommandError, match="no user 'ghost'"):
        call_command("create_api_token", "ghost", "--user", "root")
    make_user("inactive", active=False)
    with pytest.raises(CommandError, match="inactive"):
        call_command("create_api_token", "inactive", "--user", "root")
    make_user("carol")
    with pytest.raises(CommandError, match="longer than 100"):
        call_command("create_api_token", "carol", "--name", "x" * 101, "--user", "root")
    assert not ApiToken.objects.exists()


def tuktuk_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = live_server.child_env()
    return subprocess.run(
        [str(Path(sys.executable).parent / "tuktuk"), *args],
        env=env,
        cwd=live_server.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_console_script_prints_the_token_alone_and_fails_for_unknown_users(
    transactional_db: None, client: Client
) -> None:
    make_user("bob")
    done = tuktuk_cli("create-api-token", "bob", "--user", make_operator())
    assert done.returncode == 0, done.stderr
    raw = done.stdout.strip()
    assert call(client, "get", "/drivers", raw).status_code == 200

    failed = tuktuk_cli("create-api-token", "nobody", "--user", "root")
    assert failed.returncode != 0
    assert "no user 'nobody'" in failed.stderr and failed.stdout == ""
    assert ApiToken.objects.count() == 1


# --- drivers -------------------------------------------------------------------------------


def test_driver_list_and_detail(client: Client, boss_token: str) -> None:
    for number in (1, 2, 3):
        make_driver(number)
    pay("QB1", "155")  # DRV-112001: 78 to the target
    response = call(client, "get", "/drivers", boss_token)
    assert response.status_code == 200
    page = exact(response)
    assert (page["count"], page["limit"], page["offset"]) == (3, 100, 0)
    assert [d["driver_id"] for d in page["items"]] == ["DRV-112001", "DRV-112002", "DRV-112003"]
    first = page["items"][0]
    assert set(first) == {
        "driver_id",
        "name",
        "mpesa_number",
        "vehicle_id",
        "mpesa_account",
        "current_balance",
        "left_to_target",
        "balance_day",
        "consecutive_misses",
        "flagged_for_review",
        "is_active",
        "status",
        "deposit_balance",
    }
    assert first["vehicle_id"] == "TUK-001" and first["mpesa_account"] == "TUK001"
    assert first["status"] == "active"
    assert first["deposit_balance"] == Decimal("0.00") and is_number(first["deposit_balance"])
    assert first["mpesa_number"] == "254700000001"
    assert first["current_balance"] == Decimal("78.00") and is_number(first["current_balance"])
    assert first["left_to_target"] == Decimal("2922.00") and is_number(first["left_to_target"])
    assert b'"current_balance": 78.00' in response.content  # exact, not 78.0 or "78.00"
    assert first["balance_day"] is not None
    assert page["items"][1]["balance_day"] is None  # never posted to

    page = exact(call(client, "get", "/drivers?limit=1&offset=1", boss_token))
    assert page["count"] == 3 and [d["driver_id"] for d in page["items"]] == ["DRV-112002"]
    for bad in ("limit=0", "limit=1001", "offset=-1", "limit=many"):
        response = call(client, "get", f"/drivers?{bad}", boss_token)
        assert response.status_code == 422, bad
        assert exact(response)["detail"][0]["loc"][0] == "query"

    response = call(client, "get", "/drivers/drv-112002", boss_token)  # ids are case-blind
    assert response.status_code == 200
    assert exact(response)["driver_id"] == "DRV-112002"
    response = call(client, "get", "/drivers/DRV-999999", boss_token)
    assert response.status_code == 404
    assert exact(response) == {"detail": "no driver 'DRV-999999'"}


# --- reconciliation ------------------------------------------------------------------------


LEGACY_KEYS = {
    "driver_name",
    "driver",
    "old_balance",
    "calculated_balance",
    "discrepancy",
    "transactions_count",
    "from_datetime",
    "message",
}


def test_reconciliation_detects_a_balance_edited_around_the_orm(
    client: Client, broken_driver: Driver, boss_token: str
) -> None:
    response = call(client, "get", "/drivers/DRV-112001/reconciliation", boss_token)
    assert response.status_code == 200
    result = exact(response)
    assert LEGACY_KEYS <= set(result)
    assert result["driver_name"] == "DRV-112001" and result["driver"] == "Driver 1"
    assert result["old_balance"] == Decimal("300.00")
    assert result["calculated_balance"] == Decimal("150.00")
    assert result["discrepancy"] == Decimal("150.00")  # positive: the cache has extra
    for key in ("old_balance", "calculated_balance", "discrepancy", "opening_balance"):
        assert is_number(result[key]), key
    assert result["transactions_count"] == 2
    assert result["message"] == "⚠️ DISCREPANCY DETECTED: 150 KSH extra"
    assert result["day_state"] == "open" and result["problems"] == []
    # A GET is a read: no event (polling must not flood the log).
    assert not Event.objects.filter(title="Balance Discrepancy Detected").exists()
    assert set(result) == set(reconciliation.reconcile_driver_balance("DRV-112001"))

    set_balance(broken_driver, "100")
    result = exact(call(client, "get", "/drivers/DRV-112001/reconciliation", boss_token))
    assert result["discrepancy"] == Decimal("-50.00")
    assert result["message"] == "⚠️ DISCREPANCY DETECTED: 50 KSH missing"

    day = result["business_day"]
    response = call(client, "get", f"/drivers/DRV-112001/reconciliation?date={day}", boss_token)
    assert exact(response)["discrepancy"] == Decimal("-50.00")
    # Read-only: the cached balance is still the wrong one.
    broken_driver.refresh_from_db()
    assert broken_driver.current_balance == Decimal("100.00")


def test_keys_the_service_adds_later_are_passed_through(
    client: Client, broken_driver: Driver, boss_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def with_more(driver_name: str, date: object = None) -> dict[str, Any]:
        return {
            **reconciliation.reconcile_driver_balance(driver_name, date),
            "future_amount": Decimal("12.30"),
            "future_detail": {"nested": [Decimal("0.10")]},
        }

    monkeypatch.setattr(api_module, "reconcile_driver_balance", with_more)
    response = call(client, "get", "/drivers/DRV-112001/reconciliation", boss_token)
    assert response.status_code == 200
    result = exact(response)
    assert result["future_amount"] == Decimal("12.30") and is_number(result["future_amount"])
    assert result["future_detail"] == {"nested": [Decimal("0.10")]}


def test_reconciliation_rejects_bad_dates_and_unknown_drivers(
    client: Client, broken_driver: Driver, boss_token: str
) -> None:
    for bad in ("yesterday", "2025-02-30", "1733529600", "20251207", "07-12-2025", "٢٠٢٥-١٢-٠٧"):
        response = call(client, "get", f"/drivers/DRV-112001/reconciliation?date={bad}", boss_token)
        assert response.status_code == 422, bad
        (error,) = exact(response)["detail"]
        assert error["loc"] == ["query", "date"] and "day" in error["msg"], error
    response = call(client, "get", "/drivers/DRV-000000/reconciliation", boss_token)
    assert response.status_code == 404 and "DRV-000000" in exact(response)["detail"]
    response = call(
        client,
        "post",
        "/drivers/DRV-000000/fix-balance",
        boss_token,
        {"auto_fix": True, "reason": "x"},
    )
    assert response.status_code == 404

    # A day that has not begun cannot be fixed: 400, and the balance stays as it was.
    body = {"auto_fix": True, "reason": "too early", "date": "2099-01-01"}
    response = call(client, "post", "/drivers/DRV-112001/fix-balance", boss_token, body)
    assert response.status_code == 400
    assert "not a business day yet" in exact(response)["detail"]
    broken_driver.refresh_from_db()
    assert broken_driver.current_balance == Decimal("300.00")
    assert not BalanceCorrection.objects.exists()


def test_fix_balance_preview_changes_nothing_then_fix_repairs_it(
    client: Client, broken_driver: Driver, boss_token: str
) -> None:
    path = "/drivers/DRV-112001/fix-balance"
    response = call(client, "post", path, boss_token, {"auto_fix": False})
    assert response.status_code == 200
    preview = exact(response)
    assert preview["preview"] is True and preview["fixed"] is False
    assert preview["old_balance"] == Decimal("300.00") and is_number(preview["old_balance"])
    assert preview["new_balance"] == Decimal("150.00") and is_number(preview["new_balance"])
    assert preview["adjustment"] == Decimal("150.00") and is_number(preview["adjustment"])
    assert "entries_posted" not in preview  # the service's dict, not padded with nulls
    assert set(preview) == set(reconciliation.fix_driver_balance("DRV-112001"))
    broken_driver.refresh_from_db()
    assert broken_driver.current_balance == Decimal("300.00")
    assert not BalanceCorrection.objects.exists()

    for reason in ("", "   "):
        response = call(client, "post", path, boss_token, {"auto_fix": True, "reason": reason})
        assert response.status_code == 400
        assert exact(response) == {"detail": "a reason is required to fix a balance"}
    assert not BalanceCorrection.objects.exists()

    body = {"auto_fix": True, "reason": "balance edited by hand"}
    response = call(client, "post", path, boss_token, body)
    assert response.status_code == 200
    fixed = exact(response)
    assert fixed["success"] is True and fixed["fixed"] is True and fixed["preview"] is False
    assert (fixed["old_balance"], fixed["new_balance"], fixed["adjustment"]) == (
        Decimal("300.00"),
        Decimal("150.00"),
        Decimal("150.00"),
    )
    assert fixed["message"] == "✅ Balance fixed: 300 → 150 (adjusted 150 KSH)"
    assert fixed["transactions_count"] == 2 and fixed["entries_posted"] == 0
    service_keys = set(
        reconciliation.fix_driver_balance("DRV-112001", auto_fix=True, reason="same keys")
    )
    assert set(fixed) == service_keys
    correction = BalanceCorrection.objects.get()
    assert (correction.actor, correction.reason) == ("boss", "balance edited by hand")
    broken_driver.refresh_from_db()
    assert broken_driver.current_balance == Decimal("150.00")
    assert broken_driver.left_to_target == Decimal("2850.00")

    check = exact(call(client, "get", "/drivers/DRV-112001/reconciliation", boss_token))
    assert check["discrepancy"] == 0
    assert check["message"] == "✅ Balance is correct - no discrepancy"
    again = exact(call(client, "post", path, boss_token, body))
    assert again["fixed"] is False and BalanceCorrection.objects.count() == 1


def test_fixing_needs_the_permission(
    client: Client, broken_driver: Driver, clerk_token: str
) -> None:
    path = "/drivers/DRV-112001/fix-balance"
    body = {"auto_fix": True, "reason": "I am not allowed"}
    response = call(client, "post", path, clerk_token, body)
    assert response.status_code == 403
    assert "ledger.add_balancecorrection" in exact(response)["detail"]
    response = call(client, "post", "/reconciliation", clerk_token, body)
    assert response.status_code == 403
    broken_driver.refresh_from_db()
    assert broken_driver.current_balance == Decimal("300.00")
    assert not BalanceCorrection.objects.exists()

    # Looking is allowed without it.
    assert call(client, "post", path, clerk_token, {"auto_fix": False}).status_code == 200
    assert call(client, "post", "/reconciliation", clerk_token, {}).status_code == 200
    assert call(client, "get", "/drivers/DRV-112001/reconciliation", clerk_token).status_code == 200

    # The permission itself, not superuser status, is what counts.
    clerk = User.objects.get(username="clerk")
    clerk.user_permissions.add(Permission.objects.get(codename="add_balancecorrection"))
    response = call(client, "post", path, clerk_token, body)
    assert response.status_code == 200 and exact(response)["fixed"] is True
    assert BalanceCorrection.objects.get().actor == "clerk"


def test_reconciliation_over_all_drivers(client: Client, boss_token: str) -> None:
    drivers = [make_driver(number) for number in (1, 2, 3, 4)]
    for number in (1, 2, 3, 4):
        pay(f"QC{number}", "100", account=f"TUK{number:03d}")  # 50 to each target
    set_balance(drivers[0], "200")  # 150 extra
    set_balance(drivers[2], "30")  # 20 missing
    set_balance(drivers[3], "5050")  # 5000 extra: above the review threshold (1000)

    response = call(client, "post", "/reconciliation", boss_token, {"auto_fix": False})
    assert response.status_code == 200
    result = exact(response)
    assert (result["total_drivers"], result["drivers_checked"]) == (4, 4)
    assert result["drivers_with_discrepancies"] == 3 and result["auto_fixed"] is False
    assert result["total_discrepancy_amount"] == Decimal("5170.00")
    assert is_number(result["total_discrepancy_amount"]) and is_number(result["review_threshold"])
    service = reconciliation.reconcile_all_drivers_balances()
    assert set(result) == set(service)
    assert all(set(row) == set(service["results"][0]) for row in result["results"])
    rows = {row["driver_name"]: row for row in result["results"]}
    assert set(rows) == {"DRV-112001", "DRV-112003", "DRV-112004"}
    assert rows["DRV-112001"]["discrepancy"] == Decimal("150.00")
    assert rows["DRV-112003"]["discrepancy"] == Decimal("-20.00")
    assert rows["DRV-112003"]["message"] == "⚠️ DISCREPANCY DETECTED: 20 KSH missing"
    assert rows["DRV-112004"]["needs_review"] is True
    assert not BalanceCorrection.objects.exists()

    body = {
        "auto_fix": True,
        "reason": "morning check",
        "date": result["results"][0]["business_day"],
    }
    result = exact(call(client, "post", "/reconciliation", boss_token, body))
    assert result["auto_fixed"] is True and result["drivers_fixed"] == 2
    assert result["drivers_needing_review"] == 1
    assert {c.driver.driver_id for c in BalanceCorrection.objects.all()} == {
        "DRV-112001",
        "DRV-112003",
    }
    result = exact(call(client, "post", "/reconciliation", boss_token, {}))
    assert [row["driver_name"] for row in result["results"]] == ["DRV-112004"]

    response = call(client, "post", "/reconciliation", boss_token, {"date": "2025/12/07"})
    assert response.status_code == 422


# --- events --------------------------------------------------------------------------------


def test_events_newest_first_with_filters(client: Client, boss_token: str) -> None:
    Event.objects.all().delete()
    one, two = make_driver(1), make_driver(2)
    events.event_record(title="Balance Fixed", driver=one, actor="boss", data={"n": 1})
    events.event_record(title="Balance Discrepancy Detected", level="warning", driver=two)
    events.event_record(title="Day Closed", data={"amount": "12.50"})

    page = exact(call(client, "get", "/events", boss_token))
    assert page["count"] == 3
    assert [e["title"] for e in page["items"]] == [
        "Day Closed",
        "Balance Discrepancy Detected",
        "Balance Fixed",
    ]
    oldest = page["items"][-1]
    assert oldest["driver"] == "DRV-112001" and oldest["actor"] == "boss"
    assert oldest["data"] == {"n": 1} and oldest["level"] == "info"
    assert page["items"][0]["driver"] is None

    def titles(query: str) -> list[str]:
        return [
            e["title"] for e in exact(call(client, "get", f"/events?{query}", boss_token))["items"]
        ]

    assert titles("level=warning") == ["Balance Discrepancy Detected"]
    assert titles("title=balance") == ["Balance Discrepancy Detected", "Balance Fixed"]
    assert titles("driver=drv-112001") == ["Balance Fixed"]
    assert titles("driver=DRV-112001&level=warning") == []
    assert titles("limit=1&offset=1") == ["Balance Discrepancy Detected"]
    assert call(client, "get", "/events?level=loud", boss_token).status_code == 422


# --- OpenAPI, health, bad input ------------------------------------------------------------


def test_openapi_lists_every_path(client: Client, db: None) -> None:
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert set(schema["paths"]) == {
        f"{API}/health",
        f"{API}/drivers",
        f"{API}/drivers/{{driver_id}}",
        f"{API}/drivers/{{driver_id}}/reconciliation",
        f"{API}/drivers/{{driver_id}}/fix-balance",
        f"{API}/reconciliation",
        f"{API}/events",
        f"{API}/drivers/{{driver_id}}/statement",
        f"{API}/duplicates",
        f"{API}/drivers/{{driver_id}}/deposit",
        f"{API}/deposit-proposals",
        f"{API}/deposit-proposals/{{proposal_id}}/approve",
        f"{API}/deposit-proposals/{{proposal_id}}/reject",
        f"{API}/drivers/{{driver_id}}/terminate",
        f"{API}/drivers/{{driver_id}}/archive",
        f"{API}/drivers/{{driver_id}}/restore",
        f"{API}/drivers/{{driver_id}}/reset-misses",
        f"{API}/refunds",
        f"{API}/refunds/approve",
        f"{API}/refunds/{{refund_id}}/reject",
        f"{API}/reports/deposits",
        f"{API}/reports/deposits.csv",
        f"{API}/vehicles",
        f"{API}/vehicles/{{vehicle_id}}/status",
        f"{API}/vehicles/{{vehicle_id}}/assignments",
        f"{API}/vehicles/{{vehicle_id}}/assign",
        f"{API}/substitutes",
        f"{API}/substitutes/{{driver_id}}/cover",
        f"{API}/roster",
        f"{API}/roster/generate",
        f"{API}/drivers/{{driver_id}}/days-off/{{day}}",
    }
    assert schema["components"]["securitySchemes"]["BearerTokenAuth"]["scheme"] == "bearer"
    money = schema["components"]["schemas"]["DriverOut"]["properties"]["current_balance"]
    assert money["type"] == "number"  # documented as what is sent
    assert "security" not in schema["paths"][f"{API}/health"]["get"]
    assert client.get(f"{API}/docs").status_code == 200


def test_health_is_public(client: Client, db: None, vendor: str) -> None:
    response = client.get(f"{API}/health")
    assert response.status_code == 200
    assert exact(response) == {"status": "ok", "database": vendor, "version": tuktuk.__version__}


def test_health_is_503_when_the_database_is_unreachable(db: None) -> None:
    # A real server whose database does not answer (nothing listens on that port).
    unreachable = f"postgres://nobody@127.0.0.1:{free_port()}/nothing"
    with live_server_process(
        extra_env={"TUKTUK_DATABASE_URL": unreachable}, ready_statuses={503}, workers=1
    ) as server:
        for path in ("/health", f"{API}/health"):
            response = httpx.get(f"{server.url}{path}", timeout=30)
            assert response.status_code == 503, path
            assert response.json()["status"] == "error"


@pytest.mark.parametrize("path", ["/drivers/DRV-112001/fix-balance", "/reconciliation"])
def test_malformed_bodies_get_a_4xx_json_answer(
    client: Client, broken_driver: Driver, boss_token: str, path: str
) -> None:
    bodies: list[str | bytes] = [
        "{not json",
        '{"auto_fix": true, "reason": "x"',
        b"\xff\xfe\x00garbage",
        "[1, 2]",
        '"auto_fix"',
        "42",
        '{"auto_fix": "yes", "reason": "x"}',  # not a JSON boolean
        '{"autofix": true, "reason": "typo"}',  # unknown key: not a silent preview
        '{"auto_fix": true, "reason": "x", "date": 20251207}',
        '{"auto_fix": true, "reason": "x", "date": "07/12/2025"}',
        "[" * 100_000,
        json.dumps({"auto_fix": True, "reason": "x" * 70_000}),  # over the body size limit
    ]
    for raw in bodies:
        response = call(client, "post", path, boss_token, raw=raw)
        assert 400 <= response.status_code < 500, (raw[:60], response.status_code)
        assert "detail" in exact(response), raw[:60]
    # No body, or JSON null, is the all-defaults request: a check that changes nothing.
    for raw in ("", "null", "{}"):
        response = call(client, "post", path, boss_token, raw=raw)
        assert response.status_code == 200 and exact(response)["success"] is True
    broken_driver.refresh_from_db()
    assert broken_driver.current_balance == Decimal("300.00")
    assert not BalanceCorrection.objects.exists()


# --- over real HTTP ------------------------------------------------------------------------


def test_drivers_over_http_against_the_live_server(live_server_proc: LiveServer) -> None:
    make_driver(1)
    token, raw = api_token_create(user=make_user("remote"))
    url = f"{live_server_proc.url}{API}/drivers"
    response = httpx.get(url, headers={"Authorization": f"Bearer {raw}"}, timeout=30)
    assert response.status_code == 200, response.text
    page = json.loads(response.text, parse_float=Decimal)
    assert [d["driver_id"] for d in page["items"]] == ["DRV-112001"]
    assert page["items"][0]["current_balance"] == Decimal("0.00")
    assert httpx.get(url, timeout=30).status_code == 401
    token.refresh_from_db()
    assert token.last_used_at is not None  # written by the server process
    health = httpx.get(f"{live_server_proc.url}{API}/health", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_admin_lists_tokens_without_secrets_and_revokes(client: Client, db: None) -> None:
    boss = make_user("admin", superuser=True)
    token, raw = api_token_create(user=boss, name="dashboard")
    client.force_login(boss)
    page = client.get("/admin/backoffice/apitoken/")
    assert page.status_code == 200
    content = page.content.decode()
    assert token.prefix in content and "dashboard" in content
    assert raw not in content and token.key_hash not in content
    assert client.get("/admin/backoffice/apitoken/add/").status_code == 403
    response = client.post(
        "/admin/backoffice/apitoken/",
        {"action": "revoke", "_selected_action": [str(token.pk)]},
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert Event.objects.get(title="API Token Revoked").actor == "admin"
