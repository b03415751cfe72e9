"""Who drives today (issue 11) at the back office's edges: the CLI, the JSON API and the admin
call the ledger.duty services (vehicle status, handovers, substitutes and their covers, the
roster and days off), and for each edge

- a fleet manager succeeds, and the event names them;
- an accountant is refused and nothing changes;
- bad input (an unknown vehicle, overlapping covers, a handover in the past over fares already
  credited, bad days and statuses) is one clear line (400 / exit 2, 404 / exit 3, 409 / exit 5)
  and changes nothing.

Every test runs at 10:00 Nairobi on Tuesday 2026-03-10 (the clock is pinned: covers are
business days, a handover's default moment is now).
"""

from __future__ import annotations

import datetime as dt
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
from django.test import Client
from django.urls import reverse

from tests.support.clock import nairobi
from tests.support.edges import by, logged_in, snapshot, user_in_role
from tests.support.factories import make_driver
from tuktuk.backoffice.api_auth import api_token_create
from tuktuk.backoffice.roles import ACCOUNTANTS, FLEET_MANAGERS, roles_ensure
from tuktuk.core.models import Event, EventTitle
from tuktuk.fleet.models import (
    Assignment,
    DayOff,
    Driver,
    RosterPeriod,
    Vehicle,
    VehicleStatus,
    VehicleStatusChange,
)
from tuktuk.fleet.services import vehicle_upsert
from tuktuk.ledger.day_close import day_close_run
from tuktuk.ledger.duty import day_off_set_by, substitute_assign_by, substitute_create
from tuktuk.ledger.exits import driver_terminate
from tuktuk.ledger.models import DayClose, Transaction
from tuktuk.ledger.services import IncomingPayment, payment_post

pytestmark = pytest.mark.django_db

API = "/api/v1"
TODAY = nairobi(2026, 3, 10, 10)  # a Tuesday
NOT_ALLOWED, INVALID, NOT_FOUND, CONFLICT = 4, 2, 3, 5  # backoffice.errors' CLI exits


@dataclass
class World:
    manager_token: str
    accountant_token: str
    substitute: str  # DRV-112004, covering TUK-002 on Thursday 12 March


@pytest.fixture
def world() -> Iterator[World]:
    """Three drivers on TUK-001..003, TUK-004 with nobody, a substitute (DRV-112004) who covers
    TUK-002 on the 12th, and a fare paid to TUK-001 at 09:00 today, credited to DRV-112001."""
    with time_machine.travel(TODAY, tick=True):
        for number in (1, 2, 3):
            make_driver(number)
        vehicle_upsert(vehicle_id="TUK-004", mpesa_account="TUK004")
        substitute = substitute_create(name="Sub One", mpesa_number="0711000111", actor="root")
        substitute_assign_by(
            vehicle_id="TUK-002",
            substitute_id=substitute.driver_id,
            date_from="2026-03-12",
            actor="root",
        )
        payment_post(
            payment=IncomingPayment(
                trans_id="F1",
                amount=Decimal("100"),
                account_reference="TUK001",
                mpesa_time=nairobi(2026, 3, 10, 9),
            )
        )
        roles_ensure()
        manager = user_in_role("manager", FLEET_MANAGERS)
        accountant = user_in_role("accountant", ACCOUNTANTS)
        yield World(
            manager_token=api_token_create(user=manager, name="ops")[1],
            accountant_token=api_token_create(user=accountant, name="reports")[1],
            substitute=substitute.driver_id,
        )


def state() -> dict[str, list[dict[str, Any]]]:
    """Everything a duty tool could change."""
    models = [
        Vehicle,
        VehicleStatusChange,
        Assignment,
        Driver,
        DayOff,
        RosterPeriod,
        Transaction,
        Event,
    ]
    return snapshot(models)


def on_duty(vehicle_id: str) -> str | None:
    """The driver holding the vehicle now, by the history (its open regular assignment)."""
    open_one = Assignment.objects.filter(
        vehicle__vehicle_id=vehicle_id, substitute=False, ends_at__isnull=True
    ).first()
    return open_one.driver.driver_id if open_one else None


# --- the CLI -----------------------------------------------------------------------------------


def run(*argv: str) -> str:
    out = io.StringIO()
    call_command(*argv, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def refused(*argv: str) -> CommandError:
    with pytest.raises(CommandError) as refusal:
        run(*argv)
    return refusal.value


def test_cli_vehicle_status_and_list(world: World) -> None:
    said = run(
        "vehicle", "status", "TUK-003", "charging", "--reason", "battery 5 %", "--user", "manager"
    )
    assert said.strip() == "TUK-003 is now Charging (status now: Charging)."
    change = VehicleStatusChange.objects.get(vehicle__vehicle_id="TUK-003")
    assert (change.old_status, change.new_status, change.changed_by, change.reason) == (
        "Available",
        "Charging",
        "manager",
        "battery 5 %",
    )
    assert by(EventTitle.VEHICLE_STATUS_CHANGED, "manager")

    shown = run("vehicle", "status", "TUK-003")
    assert shown.startswith(
        "TUK-003 (TUK003): Charging now (set by an operator: Charging); on duty: DRV-112003"
    )
    assert "Available → Charging  by manager: battery 5 %" in shown
    as_json = json.loads(run("vehicle", "status", "TUK-001", "--json"))
    assert (as_json["status_now"], as_json["driver_id"], as_json["history"]) == (
        "Assigned",
        "DRV-112001",
        [],
    )

    listed = run("vehicle", "list").splitlines()
    assert listed[0].split() == ["vehicle", "account", "status", "now", "on", "duty", "now", "name"]
    rows = {line.split()[0]: line.split() for line in listed[1:-1]}
    assert rows["TUK-001"][:4] == ["TUK-001", "TUK001", "Assigned", "DRV-112001"]
    assert rows["TUK-003"][2:4] == ["Charging", "DRV-112003"]
    assert rows["TUK-004"][2:4] == ["Available", "-"]
    assert listed[-1] == "4 vehicle(s)."
    items = {row["vehicle_id"]: row for row in json.loads(run("vehicle", "list", "--json"))}
    assert items["TUK-002"]["driver_id"] == "DRV-112002" and not items["TUK-002"]["substitute"]


def test_cli_handover_unassign_and_history(world: World) -> None:
    said = run("assign", "TUK-004", "drv-112002", "--reason", "swap", "--user", "manager")
    assert said.startswith("TUK-004 assigned to DRV-112002 Driver 2 from 2026-03-10 10:0")
    assert (on_duty("TUK-004"), on_duty("TUK-002")) == ("DRV-112002", None)
    assert Driver.objects.get(driver_id="DRV-112002").vehicle == _vehicle("TUK-004")
    made = Assignment.objects.get(vehicle__vehicle_id="TUK-004")
    assert (made.created_by, made.reason) == ("manager", "swap")
    assert by(EventTitle.VEHICLE_ASSIGNED, "manager")

    later = "2026-03-10T18:30"
    said = run("unassign", "TUK-004", "--at", later, "--user", "manager")
    assert said.strip() == "TUK-004 unassigned from 2026-03-10 18:30: nobody drives it."
    made.refresh_from_db()
    assert (made.ends_at, made.ended_by) == (nairobi(2026, 3, 10, 18, 30), "manager")
    said = run("assign", "TUK-003", "--none", "--user", "manager")
    assert said.startswith("TUK-003 unassigned from 2026-03-10 10:0")
    assert on_duty("TUK-003") is None

    history = run("assignments", "TUK-004").splitlines()
    assert history[-1] == "1 assignment(s)."
    assert history[0].startswith("TUK-004    DRV-112002 driver     2026-03-10 10:0")
    assert "→ 2026-03-10 18:30" in history[0] and "by manager, ended by manager: swap" in history[0]
    mine = run("assignments", "DRV-112002").splitlines()
    assert [line.split()[0] for line in mine[:-1]] == ["TUK-002", "TUK-004"]
    assert "(before history)" in mine[0] and "substitute" not in mine[0]
    assert json.loads(run("assignments", "--json"))[0]["vehicle_id"] == "TUK-001"


def test_cli_substitutes(world: World) -> None:
    said = run(
        "substitute", "add", "--name", " Sub Two ", "--mpesa-number", "0711 000 222",
        "--target", "1500", "--percentage", "40", "--user", "manager",
    )  # fmt: skip
    assert said.startswith("Substitute DRV-112005 Sub Two (254711000222) added")
    added = Driver.objects.get(driver_id="DRV-112005")
    assert (added.is_substitute, added.daily_target, added.fare_percentage) == (
        True,
        Decimal("1500.00"),
        Decimal("40.00"),
    )
    assert by(EventTitle.SUBSTITUTE_ADDED, "manager")

    said = run(
        "substitute", "cover", "DRV-112005", "TUK-003", "--from", "2026-03-11", "--to",
        "2026-03-12", "--reason", "leave", "--user", "manager",
    )  # fmt: skip
    assert said.startswith(
        "Cover: TUK-003    DRV-112005 substitute 2026-03-11 00:00 → 2026-03-13 00:00"
    )
    cover = Assignment.objects.get(driver=added)
    assert (cover.substitute, cover.created_by, cover.reason) == (True, "manager", "leave")
    assert Event.objects.filter(title=EventTitle.SUBSTITUTE_ASSIGNED, actor="manager").count() == 1

    listed = run("substitute", "list")
    assert "DRV-112004 Sub One (254711000111, active): target fleet's, percentage fleet's" in listed
    assert "DRV-112005 Sub Two (254711000222, active): target 1500.00, percentage 40.00" in listed
    assert listed.count("TUK-002    DRV-112004 substitute") == 1
    assert listed.strip().endswith("2 substitute(s).")
    rows = json.loads(run("substitute", "list", "--json"))
    assert [len(row["covers"]) for row in rows] == [1, 1]


def test_cli_roster(world: World) -> None:
    said = run("roster", "preferred", "DRV-112001", "wed", "--user", "manager")
    assert said.strip() == "DRV-112001 preferred day off: Wednesday."
    assert Driver.objects.get(driver_id="DRV-112001").preferred_day_off == 2
    assert by(EventTitle.ROSTER_CHANGED, "manager")
    run("roster", "preferred", "DRV-112002", "Sunday", "--user", "manager")

    said = run(
        "roster", "generate", "--from", "2026-03-16", "--to", "2026-03-29", "--user", "manager"
    )
    period = RosterPeriod.objects.get()
    assert (
        said.strip()
        == f"Roster 2026-03-16..2026-03-29 (period {period.pk}): 4 preferred day(s) off."
    )
    assert period.created_by == "manager"
    assert sorted(DayOff.objects.values_list("driver__driver_id", "day")) == [
        ("DRV-112001", dt.date(2026, 3, 18)),
        ("DRV-112001", dt.date(2026, 3, 25)),
        ("DRV-112002", dt.date(2026, 3, 22)),
        ("DRV-112002", dt.date(2026, 3, 29)),
    ]

    said = run(
        "roster", "off", "drv-112003", "2026-03-12", "--reason", "wedding", "--user", "manager"
    )
    assert said.strip() == "DRV-112003 is off on 2026-03-12."
    off = DayOff.objects.get(driver__driver_id="DRV-112003")
    assert (off.day, off.reason, off.created_by) == (dt.date(2026, 3, 12), "wedding", "manager")
    said = run("roster", "on", "DRV-112001", "2026-03-18", "--user", "manager")
    assert said.strip() == "DRV-112001 works on 2026-03-18."
    assert not DayOff.objects.filter(driver__driver_id="DRV-112001", day="2026-03-18").exists()
    assert Event.objects.filter(title=EventTitle.ROSTER_CHANGED, actor="manager").count() == 5

    shown = run("roster", "show", "--from", "2026-03-10", "--to", "2026-03-31").splitlines()
    assert shown[:3] == [
        "Roster 2026-03-10..2026-03-31:",
        f"  period {period.pk}: 2026-03-16..2026-03-29 by manager",
        "2026-03-12 Thu  DRV-112003 Driver 3 off: wedding",
    ]
    assert len(shown) == 6 and shown[3].startswith("2026-03-22 Sun  DRV-112002")
    default = json.loads(run("roster", "show", "--json"))
    assert (default["from"], default["to"]) == ("2026-03-10", "2026-03-23")
    assert [row["day"] for row in default["days_off"]] == ["2026-03-12", "2026-03-22"]


def test_cli_refuses_an_accountant_and_changes_nothing(world: World) -> None:
    before = state()
    for argv in (
        ["vehicle", "status", "TUK-001", "Charging", "--reason", "x"],
        ["assign", "TUK-004", "DRV-112002"],
        ["assign", "TUK-001", "--none"],
        ["unassign", "TUK-001"],
        ["substitute", "add", "--name", "X", "--mpesa-number", "0711000333"],
        ["substitute", "cover", world.substitute, "TUK-003", "--from", "2026-03-14"],
        ["roster", "generate", "--from", "2026-03-16", "--to", "2026-03-22"],
        ["roster", "off", "DRV-112001", "2026-03-12"],
        ["roster", "on", "DRV-112001", "2026-03-12"],
        ["roster", "preferred", "DRV-112001", "mon"],
    ):
        refusal = refused(*argv, "--user", "accountant")
        assert refusal.returncode == NOT_ALLOWED, argv
        assert "accountant may not do this" in str(refusal), argv
        with pytest.raises(CommandError, match="who is acting"):
            run(*argv, "--user", "")
    assert state() == before
    # Reading is allowed without a --user.
    assert "4 vehicle(s)." in run("vehicle", "list")
    assert "TUK-001" in run("vehicle", "status", "TUK-001")
    run("assignments")
    run("substitute", "list")
    run("roster", "show")


LONG = "x" * 256


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["vehicle", "status", "NOPE", "Charging", "--reason", "x"], NOT_FOUND,
         "no vehicle 'NOPE'"),
        (["vehicle", "status", "TUK-001", "Subbed", "--reason", "x"], INVALID,
         "Assigned and Subbed follow the assignments"),
        (["vehicle", "status", "TUK-001", "Flying", "--reason", "x"], INVALID,
         "not one an operator sets"),
        (["vehicle", "status", "TUK-001", "Charging"], INVALID, "a reason is required"),
        (["assign", "TUK-001", "DRV-112002", "--at", "2026-03-10 08:00"], INVALID,
         "1 fare(s) paid to TUK-001 since 2026-03-10 08:00:00+03:00 are already credited"),
        (["assign", "TUK-001", "DRV-999999"], NOT_FOUND, "no driver"),
        (["assign", "NOPE", "DRV-112002"], NOT_FOUND, "no vehicle"),
        (["assign", "TUK-001"], INVALID, "name the DRIVER"),
        (["assign", "TUK-001", "DRV-112002", "--none"], INVALID, "name the DRIVER"),
        (["assign", "TUK-001", "DRV-112002", "--at", "yesterday"], INVALID,
         "--at 'yesterday' is not"),
        (["assign", "TUK-001", "DRV-112002", "--at", "1999-12-31T10:00"], INVALID,
         "outside 2000-01-01 .. 2100-12-31"),
        (["assign", "TUK-001", "DRV-112002", "--at", "0001-01-01T00:00-12:00"], INVALID, "outside"),
        (["assign", "TUK-001", "DRV-112004"], INVALID, "is a substitute"),
        (["unassign", "NOPE"], NOT_FOUND, "no vehicle"),
        (["substitute", "cover", "DRV-112004", "TUK-003", "--from", "2026-03-12"], CONFLICT,
         "overlaps "),
        (["substitute", "cover", "DRV-112004", "TUK-001", "--from", "2026-03-10"], INVALID,
         "already credited to another driver"),
        (["substitute", "cover", "DRV-112004", "TUK-003", "--from", "2026-03-14", "--to",
          "2026-03-13"], INVALID, "end on or after its first day"),
        (["substitute", "cover", "DRV-112002", "TUK-003", "--from", "2026-03-14"], INVALID,
         "DRV-112002 is not a substitute driver"),
        (["substitute", "cover", "DRV-112004", "TUK-003", "--from", "2026-02-30"], INVALID,
         "not a real day"),
        (["substitute", "cover", "DRV-112004", "NOPE", "--from", "2026-03-14"], NOT_FOUND,
         "no vehicle"),
        (["substitute", "add", "--name", "X", "--mpesa-number", "12345"], INVALID,
         "not a Kenyan mobile number"),
        (["substitute", "add", "--name", "X", "--mpesa-number", "0711000333", "--percentage",
          "101"], INVALID, "between 0 and 100"),
        (["substitute", "add", "--name", "X", "--mpesa-number", "0711000333", "--percentage",
          "4.125"], INVALID, "more than 2 decimals"),
        (["substitute", "add", "--name", "X", "--mpesa-number", "0711000333", "--target",
          "abc"], INVALID, "is not a number"),
        (["substitute", "add", "--name", "X", "--mpesa-number", "0711000333", "--target",
          "1e30"], INVALID, "too large"),
        (["substitute", "add", "--name", "x" * 121, "--mpesa-number", "0711000333"], INVALID,
         "at most 120 characters"),
        (["substitute", "add", "--name", " ", "--mpesa-number", "0711000333"], INVALID,
         "needs a name"),
        (["roster", "generate", "--from", "2026-03-10", "--to", "2027-03-20"], INVALID,
         "at most 366 days"),
        (["roster", "generate", "--from", "2026-03-10", "--to", "2026-03-01"], INVALID,
         "end on or after its first day"),
        (["roster", "generate", "--from", "2026-03-10", "--to", "2101-01-01"], INVALID,
         "outside 2000-01-01 .. 2100-12-31"),
        (["roster", "off", "DRV-999999", "2026-03-12"], NOT_FOUND, "no driver"),
        (["roster", "off", "DRV-112001", "2026-13-01"], INVALID, "not a real day"),
        (["roster", "off", "DRV-112001", "12/03/2026"], INVALID, "YYYY-MM-DD"),
        (["roster", "off", "DRV-112001", "2026-03-12", "--reason", LONG], INVALID,
         "at most 255 characters"),
        (["roster", "preferred", "DRV-112001", "someday"], INVALID, "mon, tue, wed"),
        (["roster", "preferred", "DRV-999999", "mon"], NOT_FOUND, "no driver"),
    ],
)  # fmt: skip
def test_cli_bad_input_is_one_clear_line_and_changes_nothing(
    world: World, argv: list[str], code: int, says: str
) -> None:
    before = state()
    refusal = refused(*argv, "--user", "manager")
    assert refusal.returncode == code and says in str(refusal), (refusal.returncode, refusal)
    assert "\n" not in str(refusal)
    assert state() == before


def test_cli_a_terminated_driver_is_not_given_a_vehicle(world: World) -> None:
    driver_terminate(driver_id="DRV-112003", reason="left", actor="root")
    before = state()
    refusal = refused("assign", "TUK-004", "DRV-112003", "--user", "manager")
    assert refusal.returncode == CONFLICT and "DRV-112003 is terminated" in str(refusal)
    assert state() == before


# --- the JSON API ------------------------------------------------------------------------------


def call(client: Client, method: str, path: str, token: str, body: Any = None) -> Any:
    return client.generic(
        method,
        API + path,
        json.dumps(body) if body is not None else "",
        "application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def exact(response: Any) -> Any:
    assert response["Content-Type"].startswith("application/json"), response.content
    return json.loads(response.content, parse_float=Decimal)


def test_api_vehicles_status_and_handover(world: World, client: Client) -> None:
    token = world.manager_token
    page = exact(call(client, "GET", "/vehicles", world.accountant_token))
    assert page["count"] == 4
    one = page["items"][0]
    assert one == {
        "vehicle_id": "TUK-001",
        "mpesa_account": "TUK001",
        "is_active": True,
        "status": "Available",
        "status_now": "Assigned",
        "driver_id": "DRV-112001",
        "driver_name": "Driver 1",
        "substitute": False,
    }
    assert [row["status_now"] for row in page["items"]] == [
        "Assigned", "Assigned", "Assigned", "Available",
    ]  # fmt: skip

    response = call(
        client, "POST", "/vehicles/TUK-003/status", token,
        {"status": "maintenance", "reason": "brakes"},
    )  # fmt: skip
    assert response.status_code == 200, response.content
    shown = exact(response)
    assert (shown["status"], shown["status_now"], shown["driver_id"]) == (
        "Maintenance",
        "Maintenance",
        "DRV-112003",
    )
    assert VehicleStatusChange.objects.get().changed_by == "manager"
    assert by(EventTitle.VEHICLE_STATUS_CHANGED, "manager")

    response = call(
        client, "POST", "/vehicles/TUK-004/assign", token,
        {"driver_id": "drv-112002", "at": None, "reason": "swap"},
    )  # fmt: skip
    assert response.status_code == 200, response.content
    handed = exact(response)
    assert (handed["vehicle"]["driver_id"], handed["vehicle"]["status_now"]) == (
        "DRV-112002",
        "Assigned",
    )
    assignment = handed["assignment"]
    assert (assignment["driver_id"], assignment["created_by"], assignment["ends_at"]) == (
        "DRV-112002",
        "manager",
        None,
    )
    assert by(EventTitle.VEHICLE_ASSIGNED, "manager")
    planned = "2026-03-10T18:00:00+03:00"
    response = call(
        client, "POST", "/vehicles/TUK-004/assign", token, {"driver_id": None, "at": planned}
    )
    assert response.status_code == 200, response.content
    assert exact(response)["assignment"] is None
    assert exact(response)["vehicle"]["driver_id"] == "DRV-112002"  # until 18:00

    history = exact(call(client, "GET", "/vehicles/TUK-004/assignments", world.accountant_token))
    assert history["count"] == 1
    assert history["items"][0]["ends_at"] == "2026-03-10T15:00:00+00:00"
    assert history["items"][0]["ended_by"] == "manager"
    other = exact(call(client, "GET", "/vehicles/TUK-002/assignments?limit=1", token))
    assert other["count"] == 2 and other["items"][0]["starts_at"] is None


def test_api_substitutes_and_covers(world: World, client: Client) -> None:
    token = world.manager_token
    response = call(
        client, "POST", "/substitutes", token,
        {"name": "Sub Two", "mpesa_number": "+254711000222", "daily_target": "1500.50",
         "fare_percentage": "40"},
    )  # fmt: skip
    assert response.status_code == 200, response.content
    added = exact(response)
    assert added == {
        "driver_id": "DRV-112005",
        "name": "Sub Two",
        "mpesa_number": "254711000222",
        "daily_target": Decimal("1500.50"),
        "fare_percentage": Decimal("40.00"),
        "status": "active",
        "covers": [],
    }
    assert b'"daily_target": 1500.50' in response.content  # an exact number
    assert by(EventTitle.SUBSTITUTE_ADDED, "manager")

    response = call(
        client, "POST", "/substitutes/drv-112005/cover", token,
        {"vehicle_id": "TUK-003", "from": "2026-03-14", "to": "2026-03-15", "reason": "leave"},
    )  # fmt: skip
    assert response.status_code == 200, response.content
    cover = exact(response)
    assert (cover["driver_id"], cover["vehicle_id"], cover["substitute"]) == (
        "DRV-112005",
        "TUK-003",
        True,
    )
    assert (instant(cover["starts_at"]), instant(cover["ends_at"])) == (
        nairobi(2026, 3, 14, 0),  # the opening of the 14th: midnight in Nairobi
        nairobi(2026, 3, 16, 0),
    )
    assert Event.objects.filter(title=EventTitle.SUBSTITUTE_ASSIGNED, actor="manager").count() == 1

    listed = exact(call(client, "GET", "/substitutes", world.accountant_token))
    assert [row["driver_id"] for row in listed["items"]] == ["DRV-112004", "DRV-112005"]
    assert [c["vehicle_id"] for c in listed["items"][0]["covers"]] == ["TUK-002"]
    assert listed["items"][0]["daily_target"] is None


def test_api_roster_and_days_off(world: World, client: Client) -> None:
    token = world.manager_token
    Driver.objects.filter(driver_id="DRV-112001").update(preferred_day_off=2)  # Wednesdays
    response = call(
        client, "POST", "/roster/generate", token, {"from": "2026-03-16", "to": "2026-03-29"}
    )
    assert response.status_code == 200, response.content
    roster = exact(response)
    assert (roster["from"], roster["to"]) == ("2026-03-16", "2026-03-29")
    assert [(d["day"], d["driver_id"]) for d in roster["days_off"]] == [
        ("2026-03-18", "DRV-112001"),
        ("2026-03-25", "DRV-112001"),
    ]
    (period,) = roster["periods"]
    assert (period["from"], period["created_by"]) == ("2026-03-16", "manager")
    assert roster["days_off"][0]["period_id"] == period["id"]
    assert by(EventTitle.ROSTER_CHANGED, "manager")

    response = call(
        client, "PUT", "/drivers/drv-112002/days-off/2026-03-12", token, {"reason": "leave"}
    )
    assert response.status_code == 200, response.content
    assert exact(response) == {
        "driver_id": "DRV-112002",
        "day": "2026-03-12",
        "off": True,
        "day_off": {
            "day": "2026-03-12",
            "driver_id": "DRV-112002",
            "driver_name": "Driver 2",
            "reason": "leave",
            "period_id": None,
            "created_by": "manager",
        },
    }
    again = call(client, "PUT", "/drivers/DRV-112002/days-off/2026-03-12", token)  # no body
    assert again.status_code == 200 and exact(again)["day_off"]["reason"] == "leave"
    changes = Event.objects.filter(title=EventTitle.ROSTER_CHANGED, actor="manager").count()
    assert changes == 2  # setting it twice records it once

    shown = exact(
        call(client, "GET", "/roster?from=2026-03-10&to=2026-03-31", world.accountant_token)
    )
    assert [d["day"] for d in shown["days_off"]] == ["2026-03-12", "2026-03-18", "2026-03-25"]
    default = exact(call(client, "GET", "/roster", world.accountant_token))
    assert (default["from"], default["to"]) == ("2026-03-10", "2026-03-23")

    response = call(client, "DELETE", "/drivers/DRV-112001/days-off/2026-03-18", token)
    assert response.status_code == 200, response.content
    assert exact(response) == {
        "driver_id": "DRV-112001",
        "day": "2026-03-18",
        "off": False,
        "day_off": None,
    }
    assert not DayOff.objects.filter(driver__driver_id="DRV-112001", day="2026-03-18").exists()
    assert Event.objects.filter(title=EventTitle.ROSTER_CHANGED, actor="manager").count() == 3


WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/vehicles/TUK-001/status", {"status": "Charging", "reason": "x"}),
    ("POST", "/vehicles/TUK-004/assign", {"driver_id": "DRV-112002"}),
    ("POST", "/vehicles/TUK-001/assign", {"driver_id": None}),
    ("POST", "/substitutes", {"name": "X", "mpesa_number": "0711000333"}),
    ("POST", "/substitutes/DRV-112004/cover", {"vehicle_id": "TUK-003", "from": "2026-03-14"}),
    ("POST", "/roster/generate", {"from": "2026-03-16", "to": "2026-03-22"}),
    ("PUT", "/drivers/DRV-112001/days-off/2026-03-12", {"reason": "x"}),
    ("DELETE", "/drivers/DRV-112001/days-off/2026-03-12", None),
]


def test_api_refuses_an_accountant_and_changes_nothing(world: World, client: Client) -> None:
    day_off_set_by(driver_id="DRV-112001", day="2026-03-12", off=True, actor="root")
    before = state()
    for method, path, body in WRITES:
        response = call(client, method, path, world.accountant_token, body)
        assert response.status_code == 403, (path, response.content)
        assert exact(response)["detail"].startswith("accountant may not do this (needs fleet.")
        anonymous = client.generic(method, API + path, json.dumps(body), "application/json")
        assert anonymous.status_code == 401, path
    assert state() == before
    for path in ("/vehicles", "/vehicles/TUK-001/assignments", "/substitutes", "/roster"):
        assert call(client, "GET", path, world.accountant_token).status_code == 200, path


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", "/vehicles/NOPE/status", {"status": "Charging", "reason": "x"}, 404,
         "no vehicle 'NOPE'"),
        ("POST", "/vehicles/TUK-001/status", {"status": "Subbed", "reason": "x"}, 400,
         "Assigned and Subbed follow the assignments"),
        ("POST", "/vehicles/TUK-001/status", {"status": "Flying", "reason": "x"}, 400,
         "not one an operator sets"),
        ("POST", "/vehicles/TUK-001/status", {"status": "Charging", "reason": " "}, 400,
         "a reason is required"),
        ("POST", "/vehicles/TUK-001/status", {"status": "Charging"}, 422, "reason"),
        ("POST", "/vehicles/TUK-001/status", {"status": "Charging\u0000", "reason": "x"}, 422,
         "control characters"),
        ("POST", "/vehicles/TUK%00/status", {"status": "Charging", "reason": "x"}, 422,
         "control characters"),
        ("POST", "/vehicles/" + "T" * 33 + "/status", {"status": "Charging", "reason": "x"}, 422,
         "at most 32 characters"),
        ("POST", "/vehicles/TUK-001/assign",
         {"driver_id": "DRV-112002", "at": "2026-03-10T08:00:00+03:00"}, 400,
         "1 fare(s) paid to TUK-001 since 2026-03-10 08:00:00+03:00 are already credited"),
        ("POST", "/vehicles/TUK-001/assign", {"driver_id": "DRV-999999"}, 404, "no driver"),
        ("POST", "/vehicles/NOPE/assign", {"driver_id": "DRV-112002"}, 404, "no vehicle"),
        ("POST", "/vehicles/TUK-001/assign", {}, 422, "driver_id"),
        ("POST", "/vehicles/TUK-001/assign", {"driver_id": "TUK-002"}, 422, "DRV-112001"),
        ("POST", "/vehicles/TUK-001/assign",
         {"driver_id": "DRV-112002", "at": "1999-12-31T10:00:00Z"}, 422,
         "outside 2000-01-01 .. 2100-12-31"),
        ("POST", "/vehicles/TUK-001/assign",
         {"driver_id": "DRV-112002", "at": "9999-12-31T23:59:59-23:59"}, 422, "outside"),
        ("POST", "/vehicles/TUK-001/assign", {"driver_id": "DRV-112002", "at": 1773129600}, 422,
         "ISO 8601"),
        ("POST", "/vehicles/TUK-001/assign", {"driver_id": "DRV-112002", "at": "tomorrow"}, 422,
         "is not YYYYMMDDHHMMSS"),
        ("POST", "/vehicles/TUK-001/assign", {"driver_id": "DRV-112004"}, 400,
         "is a substitute"),
        ("POST", "/substitutes/DRV-112004/cover", {"vehicle_id": "TUK-003", "from": "2026-03-12"},
         409, "overlaps "),
        ("POST", "/substitutes/DRV-112004/cover", {"vehicle_id": "TUK-001", "from": "2026-03-10"},
         400, "already credited to another driver"),
        ("POST", "/substitutes/DRV-112004/cover", {"vehicle_id": "NOPE", "from": "2026-03-14"},
         404, "no vehicle"),
        ("POST", "/substitutes/DRV-999999/cover", {"vehicle_id": "TUK-003", "from": "2026-03-14"},
         404, "no driver"),
        ("POST", "/substitutes/DRV-112002/cover", {"vehicle_id": "TUK-003", "from": "2026-03-14"},
         400, "DRV-112002 is not a substitute driver"),
        ("POST", "/substitutes/DRV-112004/cover",
         {"vehicle_id": "TUK-003", "from": "2026-03-15", "to": "2026-03-14"}, 400,
         "end on or after its first day"),
        ("POST", "/substitutes/DRV-112004/cover", {"vehicle_id": "TUK-003", "from": "2101-01-01"},
         422, "outside 2000-01-01 .. 2100-12-31"),
        ("POST", "/substitutes/DRV-112004/cover", {"vehicle_id": "TUK-003", "from": "20260314"},
         422, "YYYY-MM-DD"),
        ("POST", "/substitutes/DRV-112004/cover",
         {"vehicle_id": "TUK-003", "date_from": "2026-03-14"}, 422, "Extra inputs"),
        ("POST", "/substitutes", {"name": "X", "mpesa_number": "12345"}, 400,
         "not a Kenyan mobile number"),
        ("POST", "/substitutes",
         {"name": "X", "mpesa_number": "0711000333", "fare_percentage": "101"}, 400,
         "between 0 and 100"),
        ("POST", "/substitutes", {"name": "X", "mpesa_number": "0711000333", "daily_target": "-5"},
         400, "must be a positive number"),
        ("POST", "/substitutes", {"name": "X", "mpesa_number": "0711000333", "daily_target": 150},
         422, "string"),
        ("POST", "/substitutes", {"name": " ", "mpesa_number": "0711000333"}, 400,
         "needs a name"),
        ("POST", "/substitutes", {"name": "x" * 121, "mpesa_number": "0711000333"}, 422, "120"),
        ("POST", "/roster/generate", {"from": "2026-03-10", "to": "2027-03-20"}, 400,
         "at most 366 days"),
        ("POST", "/roster/generate", {"from": "2026-03-10", "to": "2026-03-01"}, 400,
         "end on or after its first day"),
        ("POST", "/roster/generate", {"from": "2026-03-10"}, 422, "to"),
        ("PUT", "/drivers/DRV-999999/days-off/2026-03-12", None, 404, "no driver"),
        ("PUT", "/drivers/DRV-112001/days-off/2026-02-30", None, 422, "not a real day"),
        ("PUT", "/drivers/DRV-112001/days-off/1999-12-31", None, 422, "outside"),
        ("PUT", "/drivers/DRV-112001/days-off/2026-03-12", {"reason": LONG}, 422, "255"),
        ("DELETE", "/drivers/DRV-999999/days-off/2026-03-12", None, 404, "no driver"),
        ("GET", "/roster?from=2026-03-10&to=2027-03-20", None, 400, "at most 366 days"),
        ("GET", "/roster?from=2026-03-10&to=2026-03-01", None, 400, "end on or after"),
        ("GET", "/roster?from=0001-01-01", None, 422, "outside"),
        ("GET", "/vehicles/NOPE/assignments", None, 404, "no vehicle"),
    ],
)  # fmt: skip
def test_api_bad_input_is_refused_and_changes_nothing(
    world: World, client: Client, method: str, path: str, body: Any, status: int, says: str
) -> None:
    before = state()
    response = call(client, method, path, world.manager_token, body)
    assert response.status_code == status, response.content
    detail = exact(response)["detail"]
    if status == 422:
        assert says in json.dumps(detail), detail
    else:
        assert isinstance(detail, str) and says in detail, detail
    assert state() == before


# --- the admin ---------------------------------------------------------------------------------


def _action(client: Client, model: str, name: str, pks: list[int], **extra: str) -> Any:
    return client.post(
        reverse(f"admin:{model}_changelist"),
        {"action": name, "_selected_action": [str(pk) for pk in pks], "index": "0", **extra},
    )


def _vehicle(vehicle_id: str) -> Vehicle:
    return Vehicle.objects.get(vehicle_id=vehicle_id)


def test_admin_vehicle_status_actions_and_history(world: World) -> None:
    manager = logged_in("manager")
    tuk3 = _vehicle("TUK-003")
    asked = _action(manager, "fleet_vehicle", "mark_charging", [tuk3.pk])
    assert asked.status_code == 200 and b"Reason (goes into the audit trail)" in asked.content
    assert b"Mark vehicles Charging" in asked.content
    assert not VehicleStatusChange.objects.exists()  # nothing before the reason
    done = _action(
        manager, "fleet_vehicle", "mark_charging", [tuk3.pk],
        confirm_reason="yes", reason="battery at 5 %",
    )  # fmt: skip
    assert done.status_code == 302
    tuk3.refresh_from_db()
    assert tuk3.status == VehicleStatus.CHARGING
    change = VehicleStatusChange.objects.get()
    assert (change.changed_by, change.reason) == ("manager", "battery at 5 %")
    assert by(EventTitle.VEHICLE_STATUS_CHANGED, "manager")

    listing = manager.get(reverse("admin:fleet_vehicle_changelist")).content.decode()
    assert "Status now" in listing and "Charging" in listing and "Assigned" in listing
    assert "DRV-112003 Driver 3" in listing and "mark_offline" in listing
    page = manager.get(reverse("admin:fleet_vehicle_change", args=[tuk3.pk])).content.decode()
    assert "status history" in page.lower() and "battery at 5 %" in page
    assert "assignments (hand over" in page.lower() and "DRV-112003 Driver 3" in page

    # The change form cannot write the status (the actions are the way, with a reason).
    form = {
        "vehicle_id": "TUK-003",
        "mpesa_account": "TUK003",
        "is_active": "on",
        "status": "Offline",
        "status_changes-TOTAL_FORMS": "0",
        "status_changes-INITIAL_FORMS": "0",
        "assignments-TOTAL_FORMS": "0",
        "assignments-INITIAL_FORMS": "0",
    }
    response = manager.post(reverse("admin:fleet_vehicle_change", args=[tuk3.pk]), form)
    assert response.status_code == 302, response.content[:3000]
    tuk3.refresh_from_db()
    assert tuk3.status == VehicleStatus.CHARGING and VehicleStatusChange.objects.count() == 1


def test_admin_handover_through_the_service(world: World) -> None:
    manager = logged_in("manager")
    url = reverse("admin:fleet_assignment_handover")
    driver2 = Driver.objects.get(driver_id="DRV-112002")
    page = manager.get(f"{url}?driver={driver2.pk}")
    assert page.status_code == 200 and b"Assign / hand over a vehicle" in page.content
    assert f'<option value="{driver2.pk}" selected>'.encode() in page.content

    before = state()
    past = manager.post(
        url,
        {"vehicle": _vehicle("TUK-001").pk, "driver": driver2.pk, "at": "2026-03-10 08:00"},
    )
    assert past.status_code == 200  # the form again, with the service's line
    assert "are already credited to another driver" in past.content.decode()
    for at in ("yesterday", "1999-12-31 10:00"):
        bad = manager.post(url, {"vehicle": _vehicle("TUK-004").pk, "driver": driver2.pk, "at": at})
        assert bad.status_code == 200 and b"errorlist" in bad.content, at
    assert state() == before

    done = manager.post(
        url, {"vehicle": _vehicle("TUK-004").pk, "driver": driver2.pk, "reason": "swap"}
    )
    assert done.status_code == 302 and done["Location"].endswith("?q=TUK-004")
    assert (on_duty("TUK-004"), on_duty("TUK-002")) == ("DRV-112002", None)
    assert Assignment.objects.get(vehicle__vehicle_id="TUK-004").created_by == "manager"
    assert by(EventTitle.VEHICLE_ASSIGNED, "manager")
    listed = manager.get(done["Location"], follow=True).content.decode()
    assert "TUK-004 assigned to DRV-112002 Driver 2." in listed

    unassigned = manager.post(url, {"vehicle": _vehicle("TUK-004").pk, "driver": ""})
    assert unassigned.status_code == 302 and on_duty("TUK-004") is None

    history = manager.get(reverse("admin:fleet_assignment_changelist") + "?when=running")
    assert history.status_code == 200
    text = history.content.decode()
    assert "Assign / hand over a vehicle" in text and "Substitute cover" in text
    running = [a.vehicle.vehicle_id for a in history.context["cl"].result_list]
    assert sorted(running) == ["TUK-001", "TUK-003"]  # TUK-002 handed on, TUK-004 unassigned
    planned = manager.get(reverse("admin:fleet_assignment_changelist") + "?when=planned")
    assert [a.driver.driver_id for a in planned.context["cl"].result_list] == [world.substitute]


def test_admin_substitutes_and_covers_through_the_services(world: World) -> None:
    manager = logged_in("manager")
    add = reverse("admin:fleet_driver_add_substitute")
    assert manager.get(add).status_code == 200
    bad = manager.post(
        add, {"name": "Sub Two", "mpesa_number": "0711000222", "fare_percentage": "x"}
    )
    assert bad.status_code == 200 and b"errorlist" in bad.content
    assert "fare percentage &#x27;x&#x27; is not a number" in bad.content.decode()
    bad = manager.post(add, {"name": "Sub Two", "mpesa_number": "12345"})
    assert bad.status_code == 200  # the form again, with the service's line
    assert "not a Kenyan mobile number" in bad.content.decode()
    assert not Driver.objects.filter(name="Sub Two").exists()
    done = manager.post(
        add, {"name": "Sub Two", "mpesa_number": "0711000222", "fare_percentage": "45"}
    )
    assert done.status_code == 302, done.content[:2000]
    added = Driver.objects.get(name="Sub Two")
    assert (added.is_substitute, added.fare_percentage) == (True, Decimal("45.00"))
    assert by(EventTitle.SUBSTITUTE_ADDED, "manager")
    substitutes = manager.get(done["Location"]).context["cl"].result_list
    assert [d.driver_id for d in substitutes] == [world.substitute, "DRV-112005"]  # the filter

    url = reverse("admin:fleet_assignment_cover")
    before = state()
    overlapping = manager.post(
        url,
        {
            "substitute": Driver.objects.get(driver_id=world.substitute).pk,
            "vehicle": _vehicle("TUK-003").pk,
            "date_from": "2026-03-12",
        },
    )
    assert overlapping.status_code == 200
    text = overlapping.content.decode()
    assert "overlaps" in text.lower()
    for first, last in (("2026-02-30", ""), ("2026-03-14", "2026-03-13"), ("2101-01-01", "")):
        bad = manager.post(
            url,
            {
                "substitute": added.pk,
                "vehicle": _vehicle("TUK-003").pk,
                "date_from": first,
                "date_to": last,
            },
        )
        assert bad.status_code == 200, (first, last)
        assert b"errorlist" in bad.content or b"end on or after" in bad.content, (first, last)
    assert state() == before

    done = manager.post(
        url,
        {
            "substitute": added.pk,
            "vehicle": _vehicle("TUK-003").pk,
            "date_from": "2026-03-14",
            "date_to": "2026-03-15",
            "reason": "leave",
        },
    )
    assert done.status_code == 302
    cover = Assignment.objects.get(driver=added)
    assert (cover.substitute, cover.created_by, cover.reason) == (True, "manager", "leave")
    assert (cover.starts_at, cover.ends_at) == (nairobi(2026, 3, 14, 0), nairobi(2026, 3, 16, 0))


def test_admin_days_off_and_roster_through_the_services(world: World) -> None:
    manager = logged_in("manager")
    driver1 = Driver.objects.get(driver_id="DRV-112001")
    add = reverse("admin:fleet_dayoff_add")
    done = manager.post(add, {"driver": driver1.pk, "day": "2026-03-12", "reason": "wedding"})
    assert done.status_code == 302, done.content[:2000]
    off = DayOff.objects.get()
    assert (off.driver_id, off.day, off.reason, off.created_by) == (
        driver1.pk,
        dt.date(2026, 3, 12),
        "wedding",
        "manager",
    )
    assert by(EventTitle.ROSTER_CHANGED, "manager")
    before = state()
    for day in ("2026-03-12", "2026-02-30", "12/03/2026", "2101-01-01"):  # twice, unreal, format
        again = manager.post(add, {"driver": driver1.pk, "day": day})
        # The add form again, with its error (the theme draws errors in its own markup).
        assert again.status_code == 200 and again.context["adminform"].form.errors, day
    assert state() == before

    removed = _action(manager, "fleet_dayoff", "remove_days_off", [off.pk])
    assert removed.status_code == 302 and not DayOff.objects.exists()
    assert Event.objects.filter(title=EventTitle.ROSTER_CHANGED, actor="manager").count() == 2

    # The preferred day off, on the driver's form, through its service.
    change = reverse("admin:fleet_driver_change", args=[driver1.pk])
    form = _driver_form(driver1, preferred_day_off="4")
    assert manager.post(change, form).status_code == 302
    driver1.refresh_from_db()
    assert driver1.preferred_day_off == 4
    preferred = (
        Event.objects.filter(title=EventTitle.ROSTER_CHANGED, actor="manager").order_by("pk").last()
    )
    assert preferred is not None and "preferred day off: none → Friday" in preferred.message

    generate = reverse("admin:fleet_rosterperiod_generate")
    assert manager.get(generate).status_code == 200
    before = state()
    too_long = manager.post(generate, {"date_from": "2026-03-10", "date_to": "2027-03-20"})
    assert too_long.status_code == 200 and b"at most 366 days" in too_long.content
    assert state() == before
    done = manager.post(generate, {"date_from": "2026-03-16", "date_to": "2026-03-29"})
    assert done.status_code == 302
    period = RosterPeriod.objects.get()
    assert period.created_by == "manager"
    assert list(period.days_off.values_list("day", flat=True)) == [
        dt.date(2026, 3, 20),
        dt.date(2026, 3, 27),
    ]
    days_off = manager.get(done["Location"]).content.decode()
    assert "Friday" in days_off and "preferred day off" in days_off
    periods = manager.get(reverse("admin:fleet_rosterperiod_changelist")).content.decode()
    assert "Generate a roster" in periods


def _driver_form(driver: Driver, **changes: str) -> dict[str, str]:
    return {
        "name": driver.name,
        "mpesa_number": driver.mpesa_number,
        "is_active": "on",
        "target_sharing": "Follow Global",
        "instant_payout": "Follow Global",
        "preferred_day_off": "",
        "corrections-TOTAL_FORMS": "0",
        "corrections-INITIAL_FORMS": "0",
        "day_closes-TOTAL_FORMS": "0",
        "day_closes-INITIAL_FORMS": "0",
        **changes,
    }


def test_admin_driver_form_hands_over_only_through_the_service(world: World) -> None:
    manager = logged_in("manager")
    driver1 = Driver.objects.get(driver_id="DRV-112001")
    change = reverse("admin:fleet_driver_change", args=[driver1.pk])
    page = manager.get(change).content.decode()
    assert "Assign / hand over a vehicle…" in page and 'name="vehicle"' not in page
    assert 'name="is_substitute"' not in page and 'name="preferred_day_off"' in page

    before = state()
    form = _driver_form(driver1, vehicle=str(_vehicle("TUK-004").pk), is_substitute="on")
    assert manager.post(change, form).status_code == 302
    driver1.refresh_from_db()
    assert driver1.vehicle == _vehicle("TUK-001") and not driver1.is_substitute
    after = state()
    assert after["fleet.Assignment"] == before["fleet.Assignment"]
    assert after["core.Event"] == before["core.Event"]  # nothing to record: nothing changed

    listing = manager.get(reverse("admin:fleet_driver_changelist") + "?is_substitute__exact=1")
    assert [d.driver_id for d in listing.context["cl"].result_list] == [world.substitute]
    assert "Add a substitute" in listing.content.decode()

    # A driver added in the admin has no vehicle until a handover gives them one.
    added = manager.post(
        reverse("admin:fleet_driver_add"),
        {**_driver_form(driver1), "driver_id": "DRV-112009", "name": "New", "vehicle": "4"},
    )
    assert added.status_code == 302, added.content[:3000]
    new = Driver.objects.get(driver_id="DRV-112009")
    assert new.vehicle is None and not new.assignments.exists()


def test_admin_refuses_an_accountant_and_changes_nothing(world: World) -> None:
    accountant = logged_in("accountant")
    day_off_set_by(driver_id="DRV-112001", day="2026-03-12", off=True, actor="root")
    before = state()
    driver2 = Driver.objects.get(driver_id="DRV-112002")
    tuk4 = _vehicle("TUK-004")
    for name, data in [
        ("fleet_assignment_handover", {"vehicle": tuk4.pk, "driver": driver2.pk}),
        ("fleet_assignment_cover", {"substitute": driver2.pk, "vehicle": tuk4.pk}),
        ("fleet_rosterperiod_generate", {"date_from": "2026-03-16", "date_to": "2026-03-22"}),
        ("fleet_driver_add_substitute", {"name": "X", "mpesa_number": "0711000333"}),
        ("fleet_dayoff_add", {"driver": driver2.pk, "day": "2026-03-12"}),
    ]:
        url = reverse(f"admin:{name}")
        assert accountant.get(url).status_code == 403, name
        assert accountant.post(url, data).status_code == 403, name
    for model, action, pks in [
        ("fleet_vehicle", "mark_offline", [tuk4.pk]),
        ("fleet_dayoff", "remove_days_off", list(DayOff.objects.values_list("pk", flat=True))),
    ]:
        _action(accountant, model, action, pks, confirm_reason="yes", reason="x")
    change = reverse("admin:fleet_driver_change", args=[driver2.pk])
    assert accountant.post(change, _driver_form(driver2, preferred_day_off="1")).status_code == 403
    assert state() == before
    # What they see: the lists, without the tools.
    for model in ("vehicle", "assignment", "dayoff", "rosterperiod", "driver"):
        page = accountant.get(reverse(f"admin:fleet_{model}_changelist"))
        assert page.status_code == 200, model
        text = page.content.decode()
        for tool in ("Assign / hand over", "Generate a roster", "Add a substitute", "mark_"):
            assert tool not in text, (model, tool)


def test_paused_days_show_in_the_day_close_admin(world: World) -> None:
    day_off_set_by(driver_id="DRV-112003", day="2026-03-10", off=True, actor="root")
    payment_post(  # a driver never paid is not closed: DRV-112003 drove a fare while off
        payment=IncomingPayment(
            trans_id="F3",
            amount=Decimal("100"),
            account_reference="TUK003",
            mpesa_time=nairobi(2026, 3, 10, 9, 30),
        )
    )
    with time_machine.travel(nairobi(2026, 3, 11, 10), tick=False):
        day_close_run()
    assert DayClose.objects.get(driver__driver_id="DRV-112003").paused
    manager = logged_in("manager")
    paused = manager.get(reverse("admin:ledger_dayclose_changelist") + "?paused__exact=1")
    assert paused.status_code == 200
    text = paused.content.decode()
    assert "DRV-112003" in text and "DRV-112001" not in text and "paused" in text.lower()
    driver = Driver.objects.get(driver_id="DRV-112003")
    page = manager.get(reverse("admin:fleet_driver_change", args=[driver.pk])).content.decode()
    assert "Paused" in page
