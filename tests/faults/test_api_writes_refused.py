"""Fault campaign, scenario 7 (thin; the role-by-role tests are
tests/backoffice/test_role_enumeration.py): every non-GET route of the JSON API, over HTTP
against a live server, with no token, a made-up token and an Accountant's token, with the
most dangerous bodies; from the database afterwards, nothing changed. The control: a Fleet
manager's token, the same request, does change it (so the check can fail).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from django.apps import apps
from django.contrib.auth.models import User

from tests.support.factories import edit_balance_by_sql, make_driver, pay
from tests.support.faults import report
from tests.support.invariants import assert_invariants
from tests.support.live_server import LiveServer
from tuktuk.backoffice.api import api
from tuktuk.backoffice.api_auth import api_token_create

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

API_ROOT = "/api/v1"
PATH_VALUES = {"driver_id": "DRV-112001"}  # a driver with something to fix
BODIES: list[Any] = [
    None,
    {},
    {"auto_fix": True, "reason": "fault campaign"},
    {"auto_fix": True, "reason": "fault campaign", "date": "2026-11-21"},
]
# The money and its evidence; the event log and API tokens' last use may record the attempts.
WATCHED_APPS = ("fleet", "ledger", "payouts", "mpesa")


def write_routes() -> list[tuple[str, str]]:
    routes = []
    for prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                for method in operation.methods:
                    if method not in ("GET", "HEAD", "OPTIONS"):
                        full = re.sub(
                            r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), prefix + path
                        )
                        routes.append((method, API_ROOT + "/" + full.lstrip("/")))
    return sorted(set(routes))


def database_snapshot() -> dict[str, list[dict[str, Any]]]:
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for label in WATCHED_APPS
        for model in apps.get_app_config(label).get_models()
    }


def test_no_write_route_changes_anything_without_the_right_role(
    live_server_proc: LiveServer, people: dict[str, User]
) -> None:
    driver = make_driver(1)
    pay("ROLE1", "500")
    edit_balance_by_sql(driver, "+250")  # a discrepancy a fix would correct
    _, accountant = api_token_create(user=people["accountant"])
    _, manager = api_token_create(user=people["manager"])
    routes = write_routes()
    assert routes, "the API has no write routes?"
    before = database_snapshot()
    tried = 0
    with httpx.Client(base_url=live_server_proc.url, timeout=30) as client:
        for method, path in routes:
            for token in (None, "made-up-token", accountant):
                for body in BODIES:
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    response = client.request(method, path, json=body, headers=headers)
                    tried += 1
                    assert response.status_code < 500, (method, path, token, body, response)
                    if token != accountant:
                        assert response.status_code == 401, (method, path, response.text)
        assert database_snapshot() == before
        report("api-writes-refused", {"sent": tried, "routes": len(routes), "changed": 0})
        # The control: the role that may fix does change the database.
        fix = client.post(
            f"{API_ROOT}/drivers/DRV-112001/fix-balance",
            json={"auto_fix": True, "reason": "fault campaign control"},
            headers={"Authorization": f"Bearer {manager}"},
        )
    assert fix.status_code == 200, fix.text
    assert database_snapshot() != before
    assert_invariants()
