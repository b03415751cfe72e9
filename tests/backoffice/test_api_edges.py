"""Regressions the schemathesis run found (issue 9, defect 5): each was a 500 or a body that broke
its own schema. Bad input is now a 422 in the API's validation error shape."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from tests.backoffice.test_api import make_user
from tests.support.factories import make_driver, pay
from tuktuk.backoffice.api_auth import api_token_create
from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import BalanceCorrection

API = "/api/v1"


@pytest.fixture
def token(db: None) -> str:
    make_driver(1)
    pay("EDGE1", "100")
    _, raw = api_token_create(user=make_user("boss", superuser=True))
    return raw


def get(client: Client, path: str, token: str) -> Any:
    return client.get(API + path, HTTP_AUTHORIZATION=f"Bearer {token}")


def post(client: Client, path: str, token: str, body: str) -> Any:
    return client.post(
        API + path, data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def refusal(response: Any, *, loc: list[str], says: str) -> None:
    """A 422 naming the offending parameter, in the shape every validation error has."""
    assert response.status_code == 422, response.content
    assert response["Content-Type"].startswith("application/json")
    issues = json.loads(response.content)["detail"]
    assert [issue["loc"] for issue in issues][:1] == [loc], issues
    assert says in issues[0]["msg"], issues
    assert set(issues[0]) == {"loc", "msg", "type"}


@pytest.mark.parametrize("path", ["/drivers", "/events"])
def test_an_offset_beyond_any_database_integer_is_refused(
    client: Client, token: str, path: str
) -> None:
    # Was a 500: the offset reached the database (bigint out of range on PostgreSQL,
    # "datatype mismatch" on SQLite).
    for offset in ("9223372036854775808", "9223372036854775807", "2147483648"):
        response = get(client, f"{path}?offset={offset}", token)
        refusal(response, loc=["query", "offset"], says="less than or equal to 2147483647")
    assert get(client, f"{path}?offset=2147483647", token).status_code == 200


@pytest.mark.parametrize(
    "day", ["0001-01-01", "9999-12-31", "0361-01-01", "1999-12-31", "2101-01-01"]
)
def test_a_day_outside_2000_to_2100_is_refused_everywhere(
    client: Client, token: str, day: str
) -> None:
    # Was a 500 (OverflowError in the day-before / day-after arithmetic) for 0001-01-01 and
    # 9999-12-31, and for 0361 a body whose date-times carried a +02:27:16 offset.
    says = f"{day} is outside 2000-01-01 .. 2100-12-31"
    for path, loc in [
        (f"/drivers/DRV-112001/reconciliation?date={day}", ["query", "date"]),
        (f"/drivers/DRV-112001/statement?from={day}", ["query", "from"]),
        (f"/drivers/DRV-112001/statement?to={day}", ["query", "to"]),
        (f"/duplicates?from={day}", ["query", "from"]),
        (f"/duplicates?to={day}", ["query", "to"]),
    ]:
        refusal(get(client, path, token), loc=loc, says=says)
    body = json.dumps({"auto_fix": True, "reason": "edge", "date": day})
    for path in ("/drivers/DRV-112001/fix-balance", "/reconciliation"):
        refusal(post(client, path, token, body), loc=["body", "body", "date"], says=says)
    assert not BalanceCorrection.objects.exists()
    # The edges themselves are days like any other.
    for edge in ("2000-01-01", "2100-12-31"):
        assert get(client, f"/duplicates?from={edge}&to={edge}", token).status_code == 200


def test_nul_and_control_characters_are_refused_before_the_database(
    client: Client, token: str
) -> None:
    # Was a 500 on PostgreSQL, which refuses NUL in text (and then the aborted transaction).
    for query, loc in [
        ("title=a%00b", ["query", "title"]),
        ("title=%01", ["query", "title"]),
        ("title=%C2%85", ["query", "title"]),  # C1 "next line"
    ]:
        refusal(get(client, f"/events?{query}", token), loc=loc, says="control characters")
    refusal(
        get(client, "/events?driver=DRV-11%002001", token), loc=["query", "driver"], says="DRV-"
    )
    refusal(get(client, "/drivers/DRV%00112001", token), loc=["path", "driver_id"], says="DRV-")
    for path in ("/drivers/DRV-112001/fix-balance", "/reconciliation"):
        body = json.dumps({"auto_fix": True, "reason": "over\u0000paid"})
        refusal(post(client, path, token, body), loc=["body", "body", "reason"], says="control")
    assert not BalanceCorrection.objects.exists()
    assert Driver.objects.get().current_balance == Decimal("50.00")
    # Printable text still searches, and a reason may span lines.
    assert get(client, "/events?title=Fixed", token).status_code == 200
    body = json.dumps({"auto_fix": True, "reason": "line one\nline two\tend"})
    assert post(client, "/reconciliation", token, body).status_code == 200
    # Too long is refused too.
    refusal(get(client, "/events?title=" + "x" * 101, token), loc=["query", "title"], says="100")
