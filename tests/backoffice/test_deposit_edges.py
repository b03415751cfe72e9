"""Deposits, deduction proposals, driver exits and refunds at the back office's edges (issue 10):
the CLI, the JSON API and the admin call the ledger services, and for each edge

- a fleet manager succeeds, and the event names them;
- an accountant is refused and nothing changes;
- bad input gets one clear line (400 / exit 2, unknown 404 / exit 3) and changes nothing;
- the deposit report's numbers are the entries' (and it takes the same few queries for any
  number of drivers).

Every test runs at 10:00 Nairobi on 2026-03-10, the day after a closed day (the clock is
pinned: a proposal is made at a day's close).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.support.clock import nairobi
from tests.support.edges import by, logged_in, snapshot, user_in_role
from tests.support.factories import make_driver, pay
from tuktuk.backoffice.api_auth import api_token_create
from tuktuk.backoffice.deposit_report import CSV_HEADER, deposit_report
from tuktuk.backoffice.roles import ACCOUNTANTS, FLEET_MANAGERS, roles_ensure
from tuktuk.core.models import Event, EventTitle
from tuktuk.fleet.models import Driver
from tuktuk.ledger.day_close import day_close_run
from tuktuk.ledger.deposits import deduction_decide, deposit_add, deposit_settings_set
from tuktuk.ledger.exits import driver_terminate, refunds_approve
from tuktuk.ledger.models import (
    Decision,
    DeductionProposal,
    DepositAccount,
    DepositEntry,
    DepositEntryKind,
    DepositRefund,
    LedgerEntry,
)
from tuktuk.payouts.models import Payout, PayoutKind

pytestmark = pytest.mark.django_db

API = "/api/v1"
TODAY = nairobi(2026, 3, 10, 10)
NOT_ALLOWED, INVALID, NOT_FOUND, CONFLICT = 4, 2, 3, 5  # backoffice.errors' CLI exits


@dataclass
class World:
    manager_token: str
    accountant_token: str
    proposal: int  # DRV-112001's missed 9 March: 1000 of its deposit proposed to the target


@pytest.fixture
def world() -> Iterator[World]:
    """Four drivers. DRV-112001 (deposit 1000, deductions allowed) missed the 9th: a proposal
    waits. DRV-112002 has a deposit of 500 and no debt. DRV-112003 has none. DRV-112004
    (deposit 200, deductions allowed) missed the 9th too."""
    with time_machine.travel(nairobi(2026, 3, 9, 10), tick=False):
        for number in range(1, 5):
            make_driver(number)
        pay("P1", "100")  # a driver never paid is not closed (and misses nothing)
        pay("P4", "100", account="TUK004")
        deposit_settings_set(
            driver_id="DRV-112001",
            actor="root",
            required=True,
            initial_amount="1000",
            allow_target_deduction=True,
        )
        deposit_add(driver_id="DRV-112001", amount="1000", kind="initial", reason="w", actor="root")
        deposit_settings_set(driver_id="DRV-112004", actor="root", allow_target_deduction=True)
        deposit_add(driver_id="DRV-112004", amount="200", kind="initial", reason="w", actor="root")
        deposit_add(driver_id="DRV-112002", amount="500", kind="initial", reason="w", actor="root")
    with time_machine.travel(TODAY, tick=True):
        day_close_run()
        roles_ensure()
        manager = user_in_role("manager", FLEET_MANAGERS)
        accountant = user_in_role("accountant", ACCOUNTANTS)
        yield World(
            manager_token=api_token_create(user=manager, name="ops")[1],
            accountant_token=api_token_create(user=accountant, name="reports")[1],
            proposal=DeductionProposal.objects.get(driver__driver_id="DRV-112001").pk,
        )


def state() -> dict[str, list[dict[str, Any]]]:
    """Everything a deposit tool could change (the API token's last use aside)."""
    models = [
        Driver,
        DepositAccount,
        DepositEntry,
        DeductionProposal,
        DepositRefund,
        LedgerEntry,
        Payout,
        Event,
    ]
    return snapshot(models)


def balance(driver_id: str) -> Decimal:
    last = DepositEntry.objects.filter(driver__driver_id=driver_id).order_by("-seq").first()
    return last.balance_after if last else Decimal("0.00")


# --- the deposit report: its numbers are the entries' -----------------------------------------


def expected_report() -> dict[str, dict[str, Any]]:
    """The report computed the long way, entry by entry."""
    rows: dict[str, dict[str, Any]] = {}
    for driver in Driver.objects.order_by("driver_id"):
        account = DepositAccount.objects.filter(driver=driver).first()
        entries = list(DepositEntry.objects.filter(driver=driver).order_by("seq"))
        top_ups = deductions = refunds = Decimal("0.00")
        for entry in entries:
            if entry.kind in (DepositEntryKind.INITIAL, DepositEntryKind.TOP_UP) or (
                entry.kind == DepositEntryKind.ADJUSTMENT and entry.amount > 0
            ):
                top_ups += entry.amount
            elif entry.kind == DepositEntryKind.REFUND:
                refunds -= entry.amount
            else:
                deductions -= entry.amount
        rows[driver.driver_id] = {
            "driver_id": driver.driver_id,
            "name": driver.name,
            "status": driver.status,
            "required": bool(account and account.required),
            "initial_amount": account.initial_amount if account else Decimal("0.00"),
            "balance": entries[-1].balance_after if entries else Decimal("0.00"),
            "top_ups": top_ups,
            "deductions": deductions,
            "refunds": refunds,
            "open_proposals": DeductionProposal.objects.filter(
                driver=driver, state=Decision.PROPOSED
            ).count(),
        }
    return rows


@pytest.fixture
def every_kind(world: World) -> World:
    """Entries of every kind: adjustments both ways, a damage deduction, an approved target
    deduction, a refund, and a self-payment's top-up."""
    deduction_decide(proposal_id=world.proposal, approve=True, actor="root")  # 1000 → target
    deposit_add(driver_id="DRV-112001", amount="300", kind="top-up", reason="cash", actor="root")
    deposit_add(driver_id="DRV-112001", amount="20", kind="adjustment", reason="x", actor="root")
    call_command(
        "deposit", "deduct", "DRV-112001", "50", "--type", "damage", "--reason", "mirror",
        "--user", "manager", stdout=io.StringIO(),
    )  # fmt: skip
    call_command(
        "deposit", "deduct", "DRV-112001", "10.50", "--type", "adjustment", "--reason", "x",
        "--user", "manager", stdout=io.StringIO(),
    )  # fmt: skip
    refund = driver_terminate(driver_id="DRV-112002", reason="left", actor="root")
    refunds_approve(refund_ids=[refund.pk], actor="root")
    pay("SP3", "3500", account="DRV-112003")  # 3000 to the target, 500 tops the deposit up
    return world


def test_the_report_is_the_entries(every_kind: World) -> None:
    rows = {row.driver_id: row.as_dict() for row in deposit_report().rows}
    assert rows == expected_report()
    one, two, three, four = (rows[f"DRV-11200{n}"] for n in range(1, 5))
    assert (one["top_ups"], one["deductions"], one["refunds"], one["balance"]) == (
        Decimal("1320.00"),
        Decimal("1060.50"),
        Decimal("0.00"),
        Decimal("259.50"),
    )
    assert (two["status"], two["top_ups"], two["refunds"], two["balance"]) == (
        "terminated",
        Decimal("500.00"),
        Decimal("500.00"),
        Decimal("0.00"),
    )
    assert (three["top_ups"], three["balance"]) == (Decimal("500.00"), Decimal("500.00"))
    assert (four["open_proposals"], four["balance"]) == (1, Decimal("200.00"))
    for row in rows.values():
        assert row["balance"] == row["top_ups"] - row["deductions"] - row["refunds"]
    assert str(three["deductions"]) == "0.00"  # not "-0.00"


def test_the_report_takes_the_same_queries_for_more_drivers(world: World) -> None:
    with CaptureQueriesContext(connection) as few:
        deposit_report()
    for number in range(5, 15):
        make_driver(number)
        deposit_add(
            driver_id=f"DRV-{112000 + number}", amount="10", kind="top-up", reason="x", actor="r"
        )
    with CaptureQueriesContext(connection) as many:
        report = deposit_report()
    assert len(report.rows) == 14
    assert len(many) == len(few) == 3


def test_the_report_at_every_edge(every_kind: World, client: Client) -> None:
    expected = expected_report()

    out = io.StringIO()
    call_command("deposit", "report", "--json", stdout=out)
    cli = json.loads(out.getvalue(), parse_float=Decimal)
    assert {row["driver_id"]: row for row in cli["items"]} == expected
    assert cli["totals"]["balance"] == sum(row["balance"] for row in expected.values())

    out = io.StringIO()
    call_command("deposit", "report", "--csv", stdout=out)
    from_cli_csv = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert out.getvalue().startswith(",".join(CSV_HEADER) + "\r\n")

    response = client.get(
        f"{API}/reports/deposits", HTTP_AUTHORIZATION=f"Bearer {every_kind.accountant_token}"
    )
    assert response.status_code == 200
    api = json.loads(response.content, parse_float=Decimal)
    assert {row["driver_id"]: row for row in api["items"]} == expected
    assert b'"balance": 259.50' in response.content  # money as exact numbers

    response = client.get(
        f"{API}/reports/deposits.csv", HTTP_AUTHORIZATION=f"Bearer {every_kind.accountant_token}"
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "deposit-report.csv" in response["Content-Disposition"]
    from_api_csv = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert from_api_csv == from_cli_csv
    for row in from_api_csv:
        want = expected[row["driver_id"]]
        for column in ("balance", "top_ups", "deductions", "refunds", "initial_amount"):
            assert Decimal(row[column]) == want[column], (row["driver_id"], column)
        assert row["required"] == ("yes" if want["required"] else "no")
        assert int(row["open_proposals"]) == want["open_proposals"]

    page = logged_in("accountant").get(reverse("admin:ledger_depositaccount_report"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "259.50" in text and "1060.50" in text and "1320.00" in text
    download = logged_in("accountant").get(
        reverse("admin:ledger_depositaccount_report") + "?format=csv"
    )
    assert download.content.decode() == response.content.decode()


# --- the CLI -----------------------------------------------------------------------------------


def run(*argv: str) -> str:
    out = io.StringIO()
    call_command(*argv, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def refused(*argv: str) -> CommandError:
    with pytest.raises(CommandError) as refusal:
        run(*argv)
    return refusal.value


def test_cli_a_fleet_manager_moves_the_deposit_and_is_named(world: World) -> None:
    said = run(
        "deposit", "add", "DRV-112003", "500", "--type", "top-up", "--reason", "cash at the depot",
        "--user", "manager",
    )  # fmt: skip
    assert said.strip() == "DRV-112003 deposit #1: Top Up +500.00 KSH, balance 500.00 KSH."
    said = run(
        "deposit", "deduct", "DRV-112003", "120.50", "--type", "damage", "--reason", "mirror",
        "--user", "manager",
    )  # fmt: skip
    assert "Damage Deduction -120.50 KSH, balance 379.50 KSH" in said
    entries = DepositEntry.objects.filter(driver__driver_id="DRV-112003").order_by("seq")
    assert [(e.kind, e.amount, e.actor) for e in entries] == [
        (DepositEntryKind.TOP_UP, Decimal("500.00"), "manager"),
        (DepositEntryKind.DAMAGE_DEDUCTION, Decimal("-120.50"), "manager"),
    ]
    assert by(EventTitle.DEPOSIT_RECORDED, "manager") and by(EventTitle.DEPOSIT_DEDUCTED, "manager")

    run(
        "deposit", "settings", "DRV-112003", "--required", "yes", "--initial", "1500",
        "--allow-deduction", "no", "--user", "manager",
    )  # fmt: skip
    assert by(EventTitle.DEPOSIT_SETTINGS_CHANGED, "manager")
    shown = json.loads(run("deposit", "show", "drv-112003", "--json"), parse_float=Decimal)
    assert shown["balance"] == Decimal("379.50") and shown["required"] is True
    assert shown["initial_amount"] == Decimal("1500.00")
    assert [e["seq"] for e in shown["entries"]] == [1, 2]
    text = run("deposit", "show", "DRV-112003")
    assert "balance 379.50 KSH" in text and "mirror" in text and "manager" in text


def test_cli_decisions_and_exits(world: World) -> None:
    assert "DRV-112001" in run("deposit", "proposals")
    said = run("deposit", "approve", str(world.proposal), "--user", "manager")
    assert "approved: 1000.00 KSH moved from the deposit to the target" in said
    assert balance("DRV-112001") == 0
    assert LedgerEntry.objects.filter(driver__driver_id="DRV-112001", kind="deposit").exists()
    assert by(EventTitle.DEDUCTION_APPROVED, "manager")
    waiting = run("deposit", "proposals")
    assert "DRV-112001" not in waiting and "DRV-112004" in waiting
    assert "1 deduction proposal(s) (proposed)." in waiting
    assert "approved by manager" in run("deposit", "proposals", "--state", "approved")

    said = run("driver", "terminate", "DRV-112002", "--reason", "left", "--user", "manager")
    refund = DepositRefund.objects.get(driver__driver_id="DRV-112002")
    assert f"Refund {refund.pk} proposed" in said and refund.requested_by == "manager"
    assert str(refund.pk) in run("refund", "list")
    said = run("refund", "approve", str(refund.pk), "--user", "manager")
    assert "500.00 KSH queued for M-Pesa" in said
    payout = Payout.objects.get(refund=refund)
    assert (payout.kind, payout.amount) == (PayoutKind.REFUND, Decimal("500.00"))
    assert by(EventTitle.REFUND_APPROVED, "manager")
    listed = json.loads(run("refund", "list", "--state", "all", "--json"), parse_float=Decimal)
    assert listed[0]["payout_state"] == payout.state and listed[0]["state"] == "approved"

    assert "archived" in run("driver", "archive", "DRV-112002", "--user", "manager")
    assert "active again" in run(
        "driver", "restore", "DRV-112002", "--reason", "x", "--user", "manager"
    )
    said = run("driver", "reset-misses", "DRV-112001", "--reason", "talked", "--user", "manager")
    assert "consecutive misses reset to 0" in said
    for title in (EventTitle.DRIVER_TERMINATED, EventTitle.DRIVER_ARCHIVED):
        assert by(title, "manager")
    assert by(EventTitle.DRIVER_RESTORED, "manager") and by(EventTitle.MISSES_RESET, "manager")


def test_cli_refuses_an_accountant_and_changes_nothing(world: World) -> None:
    before = state()
    for argv in (
        ["deposit", "add", "DRV-112001", "5", "--reason", "x"],
        ["deposit", "deduct", "DRV-112001", "5", "--reason", "x"],
        ["deposit", "settings", "DRV-112001", "--required", "no"],
        ["deposit", "approve", str(world.proposal)],
        ["deposit", "reject", str(world.proposal), "--reason", "x"],
        ["driver", "terminate", "DRV-112001", "--reason", "x"],
        ["driver", "reset-misses", "DRV-112001", "--reason", "x"],
        ["refund", "approve", "1"],
    ):
        refusal = refused(*argv, "--user", "accountant")
        assert refusal.returncode == NOT_ALLOWED, argv
        assert "accountant may not do this" in str(refusal)
    assert state() == before
    run("deposit", "show", "DRV-112001")  # reading is allowed
    run("deposit", "report")


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["deposit", "add", "DRV-112003", "-5", "--reason", "x"], INVALID, "positive number"),
        (["deposit", "add", "DRV-112003", "abc", "--reason", "x"], INVALID, "is not a number"),
        (["deposit", "add", "DRV-112003", "1.001", "--reason", "x"], INVALID, "more than 2"),
        (["deposit", "add", "DRV-112003", "1e30", "--reason", "x"], INVALID, "too large"),
        (["deposit", "add", "DRV-112003", "5", "--reason", "  "], INVALID, "reason is required"),
        (["deposit", "add", "DRV-999999", "5", "--reason", "x"], NOT_FOUND, "no driver"),
        (
            ["deposit", "deduct", "DRV-112002", "500.01", "--reason", "x"],
            INVALID,
            "more than the deposit balance of 500",
        ),
        (["deposit", "settings", "DRV-112002"], INVALID, "nothing to change"),
        (["deposit", "settings", "DRV-112002", "--initial", "-1"], INVALID, "positive"),
        (["deposit", "approve", "999999"], NOT_FOUND, "no deduction proposal"),
        (["driver", "archive", "DRV-112001"], CONFLICT, "only a terminated driver"),
        (["driver", "restore", "DRV-112001", "--reason", "x"], CONFLICT, "not terminated"),
        (["refund", "reject", "999999", "--reason", "x"], NOT_FOUND, "no refund"),
    ],
)
def test_cli_bad_input_is_one_clear_line_and_changes_nothing(
    world: World, argv: list[str], code: int, says: str
) -> None:
    before = state()
    refusal = refused(*argv, "--user", "manager")
    assert refusal.returncode == code and says in str(refusal), (refusal.returncode, refusal)
    assert state() == before


def test_cli_a_decision_is_taken_once(world: World) -> None:
    run("deposit", "reject", str(world.proposal), "--reason", "first day", "--user", "manager")
    assert by(EventTitle.DEDUCTION_REJECTED, "manager")
    before = state()
    again = refused("deposit", "approve", str(world.proposal), "--user", "manager")
    assert again.returncode == CONFLICT and "already rejected" in str(again)
    with pytest.raises(CommandError, match="--reason"):  # a rejection says why
        run("deposit", "reject", str(world.proposal), "--user", "manager")
    assert state() == before


def test_cli_bulk_refunds_report_each_and_exit_non_zero_when_one_fails(world: World) -> None:
    first = driver_terminate(driver_id="DRV-112002", reason="left", actor="root")
    second = driver_terminate(driver_id="DRV-112003", reason="left", actor="root")
    out = io.StringIO()
    with pytest.raises(CommandError) as refusal:
        call_command(
            "refund", "approve", str(first.pk), "999999", str(second.pk), "--user", "manager",
            stdout=out,
        )  # fmt: skip
    assert refusal.value.returncode == NOT_FOUND  # the one refusal's kind
    assert "1 of 3 refund(s) not approved" in str(refusal.value)
    lines = out.getvalue().splitlines()
    assert lines[1] == "Refund 999999: not approved: no refund 999999"
    assert f"Refund {first.pk} to DRV-112002 approved: 500.00 KSH" in lines[0]
    assert lines[2] == f"Refund {second.pk} to DRV-112003 approved: nothing left to pay back."
    assert DepositRefund.objects.filter(state=Decision.APPROVED).count() == 2


# --- the JSON API ------------------------------------------------------------------------------


def call(client: Client, method: str, path: str, token: str, body: Any = None) -> Any:
    return client.generic(
        method,
        API + path,
        json.dumps(body) if body is not None else "",
        "application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def exact(response: Any) -> Any:
    assert response["Content-Type"].startswith("application/json"), response.content
    return json.loads(response.content, parse_float=Decimal)


def test_api_a_fleet_manager_moves_the_deposit_and_is_named(world: World, client: Client) -> None:
    token = world.manager_token
    body = {"direction": "add", "type": "top-up", "amount": "150.00", "reason": "cash"}
    response = call(client, "POST", "/drivers/drv-112002/deposit", token, body)
    assert response.status_code == 200, response.content
    moved = exact(response)
    assert moved["driver_id"] == "DRV-112002" and moved["balance"] == Decimal("650.00")
    assert moved["entry"]["kind"] == "Top Up" and moved["entry"]["actor"] == "manager"
    assert b'"amount": 150.00' in response.content  # an exact number, not "150.00" or 150.0
    body = {"direction": "deduct", "type": "damage", "amount": "50", "reason": "dent"}
    assert exact(call(client, "POST", "/drivers/DRV-112002/deposit", token, body))["balance"] == (
        Decimal("600.00")
    )
    assert by(EventTitle.DEPOSIT_RECORDED, "manager") and by(EventTitle.DEPOSIT_DEDUCTED, "manager")

    response = call(
        client, "PATCH", "/drivers/DRV-112002/deposit", token,
        {"required": True, "initial_amount": "0", "allow_target_deduction": True},
    )  # fmt: skip
    assert response.status_code == 200, response.content
    shown = exact(response)
    assert (shown["required"], shown["initial_amount"], shown["allow_target_deduction"]) == (
        True,
        Decimal("0.00"),
        True,
    )
    assert by(EventTitle.DEPOSIT_SETTINGS_CHANGED, "manager")

    shown = exact(call(client, "GET", "/drivers/DRV-112002/deposit", world.accountant_token))
    assert shown["balance"] == Decimal("600.00") and shown["status"] == "active"
    assert [(e["seq"], e["amount"]) for e in shown["entries"]] == [
        (1, Decimal("500.00")),
        (2, Decimal("150.00")),
        (3, Decimal("-50.00")),
    ]
    driver = exact(call(client, "GET", "/drivers/DRV-112002", world.accountant_token))
    assert (driver["status"], driver["deposit_balance"]) == ("active", Decimal("600.00"))


def test_api_proposals_exits_and_refunds(world: World, client: Client) -> None:
    token = world.manager_token
    page = exact(call(client, "GET", "/deposit-proposals", world.accountant_token))
    assert [p["driver_id"] for p in page["items"]] == ["DRV-112001", "DRV-112004"]
    assert page["items"][0]["amount"] == Decimal("1000.00")

    response = call(client, "POST", f"/deposit-proposals/{world.proposal}/approve", token)
    assert response.status_code == 200, response.content
    assert exact(response)["state"] == "approved"
    assert exact(response)["approved_amount"] == Decimal("1000.00")
    again = call(client, "POST", f"/deposit-proposals/{world.proposal}/reject", token, {})
    assert again.status_code == 422  # a rejection needs its reason
    again = call(
        client, "POST", f"/deposit-proposals/{world.proposal}/reject", token, {"reason": "x"}
    )
    assert again.status_code == 409 and exact(again) == {
        "detail": f"deduction proposal {world.proposal} is already approved"
    }

    response = call(client, "POST", "/drivers/DRV-112002/terminate", token, {"reason": "left"})
    assert response.status_code == 200, response.content
    terminated = exact(response)
    assert terminated["driver"]["status"] == "terminated"
    refund = terminated["refund"]
    assert (refund["state"], refund["amount"], refund["requested_by"]) == (
        "proposed",
        Decimal("500.00"),
        "manager",
    )
    listed = exact(call(client, "GET", "/refunds", world.accountant_token))
    assert [r["id"] for r in listed["items"]] == [refund["id"]]

    response = call(
        client, "POST", "/refunds/approve", token, {"refund_ids": [refund["id"], 999999]}
    )
    assert response.status_code == 200, response.content
    outcome = exact(response)
    assert (outcome["approved"], outcome["refused"]) == (1, 1)
    first, second = outcome["results"]
    assert first["approved"] and first["refund"]["payout_state"] is not None
    assert first["refund"]["decided_by"] == "manager" and first["error"] is None
    assert second == {
        "refund_id": 999999,
        "approved": False,
        "error": "no refund 999999",
        "refund": None,
    }
    rejected = call(client, "POST", f"/refunds/{refund['id']}/reject", token, {"reason": "x"})
    assert rejected.status_code == 409

    archived = call(client, "POST", "/drivers/DRV-112002/archive", token)
    assert archived.status_code == 200 and exact(archived)["status"] == "archived"
    restored = call(client, "POST", "/drivers/DRV-112002/restore", token, {"reason": "back"})
    assert restored.status_code == 200 and exact(restored)["status"] == "active"
    reset = call(client, "POST", "/drivers/DRV-112001/reset-misses", token, {"reason": "talked"})
    assert reset.status_code == 200 and exact(reset)["consecutive_misses"] == 0
    for title in (
        EventTitle.DEDUCTION_APPROVED,
        EventTitle.DRIVER_TERMINATED,
        EventTitle.REFUND_APPROVED,
        EventTitle.DRIVER_ARCHIVED,
        EventTitle.DRIVER_RESTORED,
        EventTitle.MISSES_RESET,
    ):
        assert by(title, "manager"), title


def test_api_refuses_an_accountant_and_changes_nothing(world: World, client: Client) -> None:
    before = state()
    token = world.accountant_token
    body = {"direction": "add", "type": "top-up", "amount": "150.00", "reason": "x"}
    response = call(client, "POST", "/drivers/DRV-112001/deposit", token, body)
    assert response.status_code == 403
    assert exact(response) == {
        "detail": "accountant may not do this (needs ledger.manage_deposits)"
    }
    assert (
        call(client, "POST", "/drivers/DRV-112001/terminate", token, {"reason": "x"}).status_code
        == 403
    )
    assert call(client, "POST", "/refunds/approve", token, {"refund_ids": [1]}).status_code == 403
    assert state() == before


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"amount": "-5"}, 400, "must be a positive number"),
        ({"amount": "abc"}, 400, "is not a number"),
        ({"amount": "1.001"}, 400, "has more than 2 decimals"),
        ({"amount": "1e30"}, 400, "too large"),
        ({"amount": "99999999999999"}, 400, "too large"),
        ({"amount": "0"}, 400, "must be a positive number"),
        ({"reason": " "}, 400, "a reason is required"),
        ({"direction": "deduct", "amount": "200.01"}, 400, "more than the deposit balance"),
        ({"direction": "add", "type": "damage"}, 400, "not one of"),
        ({"amount": 150}, 422, "string"),  # amounts are decimal strings, never JSON numbers
        ({"type": "bonus"}, 422, "top-up"),
        ({"amount": "5\x00"}, 422, "control characters"),
        ({"surprise": True}, 422, "Extra inputs"),
    ],
)
def test_api_bad_input_is_refused_and_changes_nothing(
    world: World, client: Client, body: dict[str, Any], status: int, says: str
) -> None:
    payload = {"direction": "add", "type": "top-up", "amount": "10", "reason": "x"}
    if body.get("direction") == "deduct":
        payload["type"] = "damage"
    payload.update(body)
    before = state()
    response = call(client, "POST", "/drivers/DRV-112004/deposit", world.manager_token, payload)
    assert response.status_code == status, response.content
    detail = exact(response)["detail"]
    if status == 400:
        assert isinstance(detail, str) and says in detail, detail
    else:
        assert says in json.dumps(detail), detail
    assert state() == before


def test_api_unknown_things_are_404(world: World, client: Client) -> None:
    before = state()
    token = world.manager_token
    body = {"direction": "add", "type": "top-up", "amount": "10", "reason": "x"}
    for method, path, payload in [
        ("GET", "/drivers/DRV-999999/deposit", None),
        ("POST", "/drivers/DRV-999999/deposit", body),
        ("PATCH", "/drivers/DRV-999999/deposit", {"required": True}),
        ("POST", "/drivers/DRV-999999/terminate", {"reason": "x"}),
        ("POST", "/deposit-proposals/999999/approve", None),
        ("POST", "/refunds/999999/reject", {"reason": "x"}),
    ]:
        response = call(client, method, path, token, payload)
        assert response.status_code == 404, (path, response.content)
        assert isinstance(exact(response)["detail"], str)
    response = call(client, "PATCH", "/drivers/DRV-112001/deposit", token, {})
    assert response.status_code == 400 and exact(response) == {"detail": "nothing to change"}
    assert state() == before


# --- the admin ---------------------------------------------------------------------------------


def test_admin_records_a_movement_through_the_service(world: World) -> None:
    manager = logged_in("manager")
    url = reverse("admin:ledger_depositentry_record")
    driver = Driver.objects.get(driver_id="DRV-112003")
    page = manager.get(f"{url}?driver={driver.pk}")
    assert page.status_code == 200 and b"Record a deposit movement" in page.content

    response = manager.post(
        url, {"driver": driver.pk, "movement": "add:initial", "amount": "750", "reason": "cash"}
    )
    assert response.status_code == 302
    entry = DepositEntry.objects.get(driver=driver)
    assert (entry.kind, entry.amount, entry.actor) == (
        DepositEntryKind.INITIAL,
        Decimal("750.00"),
        "manager",
    )
    assert by(EventTitle.DEPOSIT_RECORDED, "manager")
    listed = manager.get(response["Location"])
    assert b"DRV-112003: Initial Deposit +750.00 KSH, deposit now 750.00 KSH." in listed.content

    before = state()
    too_much = manager.post(
        url, {"driver": driver.pk, "movement": "deduct:damage", "amount": "750.01", "reason": "x"}
    )
    assert too_much.status_code == 200  # the form again, with the service's line
    assert "more than the deposit balance of 750 KSH" in too_much.content.decode()
    for amount in ("-5", "abc", "1.001", "0"):
        bad = manager.post(
            url, {"driver": driver.pk, "movement": "add:top-up", "amount": amount, "reason": "x"}
        )
        assert bad.status_code == 200 and b"errorlist" in bad.content, amount
    no_reason = manager.post(
        url, {"driver": driver.pk, "movement": "add:top-up", "amount": "5", "reason": ""}
    )
    assert no_reason.status_code == 200 and b"errorlist" in no_reason.content
    assert state() == before


def test_admin_deposit_settings_through_the_service(world: World) -> None:
    manager = logged_in("manager")
    driver = Driver.objects.get(driver_id="DRV-112003")
    response = manager.post(
        reverse("admin:ledger_depositaccount_add"),
        {"driver": driver.pk, "required": "on", "initial_amount": "1200"},
    )
    assert response.status_code == 302, response.content[:2000]
    account = DepositAccount.objects.get(driver=driver)
    assert (account.required, account.initial_amount, account.allow_target_deduction) == (
        True,
        Decimal("1200.00"),
        False,
    )
    assert Event.objects.get(title=EventTitle.DEPOSIT_SETTINGS_CHANGED, actor="manager")

    change = reverse("admin:ledger_depositaccount_change", args=[account.pk])
    response = manager.post(change, {"required": "on", "initial_amount": "0"})
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.initial_amount == 0
    changed = Event.objects.filter(title=EventTitle.DEPOSIT_SETTINGS_CHANGED, actor="manager")
    assert changed.count() == 2 and changed.order_by("pk").last().data == {"initial_amount": "0.00"}

    before = state()
    bad = manager.post(change, {"required": "on", "initial_amount": "-5"})
    assert bad.status_code == 200 and b"errorlist" in bad.content
    assert manager.post(change, {"required": "on", "initial_amount": "0"}).status_code == 302
    assert state() == before  # nothing changed: nothing recorded
    listing = manager.get(reverse("admin:ledger_depositaccount_changelist"))
    assert listing.status_code == 200 and b"1000.00" in listing.content  # DRV-112001's balance


def _action(client: Client, model: str, name: str, pks: list[int], **extra: str) -> Any:
    return client.post(
        reverse(f"admin:{model}_changelist"),
        {"action": name, "_selected_action": [str(pk) for pk in pks], "index": "0", **extra},
    )


def test_admin_proposal_actions(world: World) -> None:
    manager = logged_in("manager")
    other = DeductionProposal.objects.get(driver__driver_id="DRV-112004")
    done = _action(manager, "ledger_deductionproposal", "approve_proposals", [world.proposal])
    assert done.status_code == 302
    assert DeductionProposal.objects.get(pk=world.proposal).decided_by == "manager"
    assert balance("DRV-112001") == 0 and by(EventTitle.DEDUCTION_APPROVED, "manager")

    asked = _action(manager, "ledger_deductionproposal", "reject_proposals", [other.pk])
    assert asked.status_code == 200 and b"Reason (goes into the audit trail)" in asked.content
    assert b"DRV-112004 Driver 4: missed 2026-03-09" in asked.content
    empty = manager.post(
        reverse("admin:ledger_deductionproposal_changelist"),
        {
            "action": "reject_proposals",
            "_selected_action": [str(other.pk)],
            "confirm_reason": "yes",
            "reason": " ",
        },
    )  # as the reason page posts it (no index)
    assert empty.status_code == 200 and b"A reason is required." in empty.content
    other.refresh_from_db()
    assert other.state == Decision.PROPOSED
    rejected = manager.post(
        reverse("admin:ledger_deductionproposal_changelist"),
        {
            "action": "reject_proposals",
            "_selected_action": [str(other.pk)],
            "confirm_reason": "yes",
            "reason": "first week",
        },
    )
    assert rejected.status_code == 302
    other.refresh_from_db()
    assert (other.state, other.reason, other.decided_by) == (
        Decision.REJECTED,
        "first week",
        "manager",
    )
    again = _action(manager, "ledger_deductionproposal", "approve_proposals", [other.pk])
    page = manager.get(again["Location"])
    assert b"is already rejected" in page.content


def test_admin_refund_actions_and_driver_exits(world: World) -> None:
    manager = logged_in("manager")
    one, two = (Driver.objects.get(driver_id=f"DRV-11200{n}") for n in (2, 3))
    asked = _action(manager, "fleet_driver", "terminate_drivers", [one.pk, two.pk])
    assert asked.status_code == 200 and b"Terminate drivers" in asked.content
    assert not DepositRefund.objects.exists()  # nothing before the reason
    done = _action(
        manager, "fleet_driver", "terminate_drivers", [one.pk, two.pk],
        confirm_reason="yes", reason="left the fleet",
    )  # fmt: skip
    assert done.status_code == 302
    refunds = list(DepositRefund.objects.order_by("driver__driver_id"))
    assert [(r.driver_id, r.amount, r.requested_by) for r in refunds] == [
        (one.pk, Decimal("500.00"), "manager"),
        (two.pk, Decimal("0.00"), "manager"),
    ]
    assert Event.objects.filter(title=EventTitle.DRIVER_TERMINATED, actor="manager").count() == 2

    done = _action(manager, "ledger_depositrefund", "approve_refunds", [refunds[0].pk])
    assert done.status_code == 302
    assert Payout.objects.get(refund=refunds[0]).amount == Decimal("500.00")
    assert by(EventTitle.REFUND_APPROVED, "manager")
    done = _action(
        manager, "ledger_depositrefund", "reject_refunds", [refunds[1].pk],
        confirm_reason="yes", reason="nothing to pay",
    )  # fmt: skip
    assert DepositRefund.objects.get(pk=refunds[1].pk).state == Decision.REJECTED
    assert by(EventTitle.REFUND_REJECTED, "manager")
    listing = manager.get(reverse("admin:ledger_depositrefund_changelist"))
    assert listing.status_code == 200 and b"TTL-REFUND-DRV-112002" in listing.content

    archive = reverse("admin:fleet_driver_changelist")
    done = manager.post(
        archive,
        {"action": "archive_drivers", "_selected_action": [str(one.pk)], "index": "0"},
        follow=True,  # the next page shows (and uses up) the messages
    )
    assert b"DRV-112002 archived." in done.content
    one.refresh_from_db()
    assert one.status == "archived" and by(EventTitle.DRIVER_ARCHIVED, "manager")
    everyday = manager.get(reverse("admin:fleet_driver_changelist")).content.decode()
    assert "DRV-112002" not in everyday and "DRV-112003" in everyday  # archived: off the list
    archived = manager.get(reverse("admin:fleet_driver_changelist") + "?status=archived")
    assert "DRV-112002" in archived.content.decode()

    # An archived driver is restored from the archived list (the action acts on what it shows).
    restored = manager.post(
        reverse("admin:fleet_driver_changelist") + "?status=archived",
        {
            "action": "restore_drivers",
            "_selected_action": [str(one.pk)],
            "confirm_reason": "yes",
            "reason": "came back",
        },
    )
    assert restored.status_code == 302
    one.refresh_from_db()
    assert one.status == "active" and by(EventTitle.DRIVER_RESTORED, "manager")

    flagged = Driver.objects.get(driver_id="DRV-112001")
    assert flagged.consecutive_misses == 1
    done = _action(
        manager, "fleet_driver", "reset_misses", [flagged.pk],
        confirm_reason="yes", reason="talked to him",
    )  # fmt: skip
    flagged.refresh_from_db()
    assert flagged.consecutive_misses == 0 and by(EventTitle.MISSES_RESET, "manager")


def test_admin_refuses_an_accountant_and_changes_nothing(world: World) -> None:
    accountant = logged_in("accountant")
    before = state()
    record = reverse("admin:ledger_depositentry_record")
    driver = Driver.objects.get(driver_id="DRV-112003")
    data = {"driver": driver.pk, "movement": "add:top-up", "amount": "5", "reason": "x"}
    assert accountant.get(record).status_code == 403
    assert accountant.post(record, data).status_code == 403
    add = reverse("admin:ledger_depositaccount_add")
    assert accountant.post(add, {"driver": driver.pk, "initial_amount": "5"}).status_code == 403
    for model, name in [
        ("fleet_driver", "terminate_drivers"),
        ("fleet_driver", "reset_misses"),
        ("ledger_deductionproposal", "approve_proposals"),
    ]:
        pks = [driver.pk] if model == "fleet_driver" else [world.proposal]
        _action(accountant, model, name, pks, confirm_reason="yes", reason="x")
    assert state() == before
    # What they see: the entries, the accounts and the report, without the tools.
    entries = accountant.get(reverse("admin:ledger_depositentry_changelist"))
    assert entries.status_code == 200 and b"Record a deposit movement" not in entries.content
    changelist = accountant.get(reverse("admin:fleet_driver_changelist"))
    assert b"terminate_drivers" not in changelist.content


def test_admin_driver_form_cannot_write_what_the_services_own(world: World) -> None:
    manager = logged_in("manager")
    driver = Driver.objects.get(driver_id="DRV-112001")
    url = reverse("admin:fleet_driver_change", args=[driver.pk])
    page = manager.get(url).content.decode()
    assert "Record a deposit movement" in page and "Status and deposit" in page
    form = {
        "name": "Renamed",
        "mpesa_number": driver.mpesa_number,
        "vehicle": driver.vehicle_id,
        "is_active": "on",
        "target_sharing": "Follow Global",
        "instant_payout": "Follow Global",
        "consecutive_misses": "0",
        "flagged_for_review": "",
        "terminated_at_0": "2026-03-10",
        "terminated_at_1": "09:00:00",
        "archived_at_0": "2026-03-10",
        "archived_at_1": "09:00:00",
        "corrections-TOTAL_FORMS": "0",
        "corrections-INITIAL_FORMS": "0",
        "day_closes-TOTAL_FORMS": "0",
        "day_closes-INITIAL_FORMS": "0",
    }
    Driver.objects.filter(pk=driver.pk).update(flagged_for_review=True)
    assert manager.post(url, form).status_code == 302
    driver.refresh_from_db()
    assert driver.name == "Renamed"
    assert (driver.consecutive_misses, driver.flagged_for_review) == (1, True)
    assert driver.terminated_at is None and driver.archived_at is None

    # The legacy id on the stickers is the driver's own account; never a vehicle's.
    vehicle_account = manager.post(url, {**form, "account_alias": "tuk002"})
    assert vehicle_account.status_code == 200
    assert "TUK002 is a vehicle&#x27;s account number" in vehicle_account.content.decode()
    assert manager.post(url, {**form, "account_alias": " d112001 "}).status_code == 302
    driver.refresh_from_db()
    assert driver.account_alias == "D112001"

    # A terminated driver cannot be made active again by the form (restore is the way back).
    driver_terminate(driver_id="DRV-112001", reason="left", actor="root")
    assert manager.post(url, {**form, "name": "Again"}).status_code == 302
    driver.refresh_from_db()
    assert (driver.name, driver.is_active, driver.vehicle_id) == ("Again", False, None)
