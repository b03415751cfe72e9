"""GET /api/v1/drivers/{id}/statement (JSON and CSV) and GET /api/v1/duplicates."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client

from tests.support.c2b import confirmation_payload
from tests.support.clock import nairobi
from tests.support.factories import make_driver, pay
from tuktuk.backoffice.api_auth import api_token_create
from tuktuk.fleet.models import Driver
from tuktuk.ledger.statement_csv import CSV_HEADER

pytestmark = pytest.mark.django_db(transaction=True)
API = "/api/v1"
STATEMENT = f"{API}/drivers/DRV-112001/statement"


def get(client: Client, url: str, token: str | None, **params: str) -> HttpResponse:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    with time_machine.travel(nairobi(2026, 3, 11, 12), tick=False):
        return client.get(url, params, **headers)


def exact(response: HttpResponse) -> Any:
    """The JSON body with every number as a Decimal, so a string amount cannot pass as one."""
    assert response["Content-Type"].startswith("application/json"), response.content
    return json.loads(response.content, parse_float=Decimal)


@pytest.fixture
def token(db: None) -> str:
    user = User.objects.create_user("clerk", "clerk@example.com", "pw")
    _, raw = api_token_create(user=user, name="tests")
    return raw


@pytest.fixture
def carried_debt() -> Driver:
    """2000 paid on D (a miss: 1000 of 3000), then 400 on D+1 after the lazy close."""
    with time_machine.travel(nairobi(2026, 3, 10, 9), tick=False):
        driver = make_driver(1)
        pay("AS1", "2000")
    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=False):
        pay("AS2", "400")
    driver.refresh_from_db()
    return driver


def test_statement_json_adds_up_with_exact_numbers(
    client: Client, carried_debt: Driver, token: str
) -> None:
    response = get(client, STATEMENT, token, **{"from": "2026-03-10", "to": "2026-03-11"})
    assert response.status_code == 200, response.content
    body = exact(response)
    assert (body["driver_id"], body["from"], body["to"], body["open_day"]) == (
        "DRV-112001",
        "2026-03-10",
        "2026-03-11",
        "2026-03-11",
    )
    assert (body["opening_balance"], body["closing_balance"]) == (Decimal("0"), Decimal("-1800"))
    assert body["closing_balance"] == carried_debt.current_balance
    assert isinstance(body["closing_balance"], Decimal)  # a JSON number, not a string
    first, second = body["days"]
    assert (first["state"], first["closing"], first["carried_over"], first["target_met"]) == (
        "closed",
        Decimal("1000.00"),
        Decimal("-2000.00"),
        False,
    )
    assert (second["state"], second["opening"], second["closing"], second["cached_balance"]) == (
        "open",
        Decimal("-2000.00"),
        Decimal("-1800.00"),
        Decimal("-1800.00"),
    )
    totals = body["totals"]
    assert totals["closing_balance"] == (
        totals["opening_balance"]
        + totals["contributions"]
        + totals["corrections"]
        + totals["carry_over_adjustments"]
    )
    assert (totals["amount_received"], totals["driver_share"]) == (Decimal(2400), Decimal(1200))
    assert [t["trans_id"] for t in body["transactions"]] == ["AS1", "AS2"]
    assert body["transactions"][0]["received_at"] == "2026-03-10T09:00:00+03:00"
    assert body["transactions"][0]["payout_state"] == "held"
    assert [e["kind"] for e in body["entries"]] == ["contribution", "opening", "contribution"]
    assert body["problems"] == []

    default = exact(get(client, f"{API}/drivers/drv-112001/statement", token))
    assert (default["from"], default["to"], default["closing_balance"]) == (
        "2026-03-11",
        "2026-03-11",
        Decimal("-1800.00"),
    )


def test_statement_csv_is_an_attachment_that_parses_back(
    client: Client, carried_debt: Driver, token: str
) -> None:
    response = get(
        client, STATEMENT, token, **{"from": "2026-03-10", "to": "2026-03-11", "format": "csv"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="statement-DRV-112001-2026-03-10-2026-03-11.csv"'
    )
    text = response.content.decode("utf-8")
    assert "\r\n" in text
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    assert header == CSV_HEADER
    column = {name: n for n, name in enumerate(CSV_HEADER)}
    kinds = [row[column["kind"]] for row in rows]
    assert kinds == ["opening", "payment", "closing", "opening", "payment", "closing", "total"]
    *lines, total = rows
    changes = [Decimal(row[column["balance_change"]]) for row in lines]
    assert sum(changes) == Decimal("-1800.00") == Decimal(lines[-1][column["running_balance"]])
    assert Decimal(total[column["amount"]]) == Decimal("2400.00")


@pytest.mark.parametrize(
    ("url", "params", "status", "message"),
    [
        (f"{API}/drivers/DRV-999999/statement", {}, 404, "no driver 'DRV-999999'"),
        (STATEMENT, {"from": "2026-03-11", "to": "2026-03-10"}, 400, "is after"),
        (STATEMENT, {"from": "2025-03-09", "to": "2026-03-10"}, 400, "at most 366"),
        (STATEMENT, {"to": "2026-03-12"}, 400, "not a business day yet"),
        (STATEMENT, {"from": "2026-3-10"}, 422, "YYYY-MM-DD"),
        (STATEMENT, {"to": "yesterday"}, 422, "YYYY-MM-DD"),
        (STATEMENT, {"from": "2026-02-30"}, 422, "not a real day"),
        (STATEMENT, {"format": "pdf"}, 422, "csv"),
        (f"{API}/duplicates", {"from": "2026-03-11", "to": "2026-03-10"}, 400, "is after"),
        (f"{API}/duplicates", {"to": "20260310"}, 422, "YYYY-MM-DD"),
    ],
)
def test_bad_input_is_a_clear_error(
    client: Client,
    carried_debt: Driver,
    token: str,
    url: str,
    params: dict[str, str],
    status: int,
    message: str,
) -> None:
    response = get(client, url, token, **params)
    assert response.status_code == status, response.content
    assert message in json.dumps(exact(response)["detail"])


def test_both_endpoints_need_a_token(client: Client, carried_debt: Driver) -> None:
    for url in (STATEMENT, f"{STATEMENT}?format=csv", f"{API}/duplicates"):
        for token in (None, "not-a-token"):
            response = get(client, url, token)
            assert response.status_code == 401
            assert exact(response) == {"detail": "a valid bearer token is required"}


def test_duplicates_lists_counts_and_delivery_times(client: Client, token: str) -> None:
    with time_machine.travel(nairobi(2026, 3, 11, 8), tick=False):
        make_driver(1)
    for minute, trans_id in [(0, "APID1"), (1, "APID1"), (2, "APIONE"), (7, "APID1")]:
        with time_machine.travel(nairobi(2026, 3, 11, 9, minute), tick=False):
            client.post(
                f"/c2b/{settings.CALLBACK_TOKEN}/confirmation",
                json.dumps(confirmation_payload(trans_id=trans_id, amount="250", account="TUK001")),
                content_type="application/json",
            )
    body = exact(get(client, f"{API}/duplicates", token, **{"from": "2026-03-11"}))
    assert (body["from"], body["to"], body["trans_ids"], body["deliveries"]) == (
        "2026-03-11",
        "2026-03-11",
        1,
        3,
    )
    (duplicate,) = body["duplicates"]
    assert (duplicate["trans_id"], duplicate["count"], duplicate["processed"]) == ("APID1", 3, 1)
    assert (duplicate["driver_id"], duplicate["amount"]) == ("DRV-112001", Decimal("250.00"))
    assert [d["received_at"] for d in duplicate["deliveries"]] == [
        "2026-03-11T09:00:00+03:00",
        "2026-03-11T09:01:00+03:00",
        "2026-03-11T09:07:00+03:00",
    ]
    assert [d["state"] for d in duplicate["deliveries"]] == ["processed", "duplicate", "duplicate"]
    assert duplicate["first_received_at"] == "2026-03-11T09:00:00+03:00"
    empty = exact(
        get(client, f"{API}/duplicates", token, **{"from": "2026-03-10", "to": "2026-03-10"})
    )
    assert empty["duplicates"] == [] and empty["trans_ids"] == 0


def test_a_self_payment_shows_each_part_in_the_api(
    client: Client, carried_debt: Driver, token: str
) -> None:
    """D+1 opens at -2000 and AS2 brought it to -1800: 4800 short. The driver pays 5000 with
    their own id: 4800 to the target, 100 to an open adjustment, 100 to the deposit."""
    from tuktuk.ledger.adjustments import adjustment_add

    with time_machine.travel(nairobi(2026, 3, 11, 10), tick=False):
        adjustment_add(driver_id="DRV-112001", amount="100", reason="fuel", actor="m")
        pay("SP1", "5000", account="DRV-112001")
    body = exact(get(client, STATEMENT, token, **{"from": "2026-03-11", "to": "2026-03-11"}))
    [paid] = [t for t in body["transactions"] if t["trans_id"] == "SP1"]
    assert (paid["target_contribution"], paid["to_adjustments"], paid["to_deposit"]) == (
        Decimal("4800.00"),
        Decimal("100.00"),
        Decimal("100.00"),
    )
    assert (paid["transaction_type"], paid["driver_share"]) == ("Self Payment", Decimal(0))
    [day] = body["days"]
    assert day["from_deposit"] == 0
    assert (
        day["closing"]
        == Decimal("3000.00")
        == (day["opening"] + day["contributions"] + day["corrections"] + day["from_deposit"])
    )
    assert body["problems"] == []
