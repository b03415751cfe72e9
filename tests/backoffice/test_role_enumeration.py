"""Every edge that can move money, found by enumeration, is refused to Accountants and to
anonymous callers and changes nothing; the right role succeeds and the event names the actor.

Issue 9 (defect 4): the admin's replay action credited money for anyone who could see the
callback inbox, and recorded no actor. Nothing here is listed by hand except what is *allowed*
without a money permission: a new admin action, admin view, API route or management command
is tested the moment it exists, and fails this module until it is classified below.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.core.management import call_command, get_commands
from django.core.management.base import CommandError
from django.db import models
from django.test import Client, RequestFactory
from django.urls import URLPattern, reverse
from django.utils import timezone

from tests.support.c2b import confirmation_payload
from tests.support.clock import nairobi
from tests.support.factories import edit_balance_by_sql, make_driver, pay
from tests.support.portal_world import world_portal_and_sms, world_unknown_sms
from tuktuk.backoffice.api import api
from tuktuk.backoffice.api_auth import api_token_create, frappe_api_key_create
from tuktuk.backoffice.errors import error_shape
from tuktuk.backoffice.frappe import FRAPPE_METHODS
from tuktuk.backoffice.legacy import fix_driver_balance
from tuktuk.backoffice.portal.models import ProblemReport
from tuktuk.backoffice.reports.models import ReportKind
from tuktuk.backoffice.reports.services import report_store
from tuktuk.backoffice.roles import ACCOUNTANTS, FLEET_MANAGERS, OUR_APPS, roles_ensure
from tuktuk.core.errors import NotAllowed
from tuktuk.core.models import Event, EventTitle
from tuktuk.fleet.models import Assignment, DayOff, Driver, RosterPeriod, Vehicle
from tuktuk.ledger.adjustments import adjustment_add
from tuktuk.ledger.day_close import day_close_run
from tuktuk.ledger.deposits import deposit_add, deposit_settings_set
from tuktuk.ledger.duty import (
    day_off_set_by,
    preferred_day_off_set_by,
    roster_generate_by,
    substitute_assign_by,
    substitute_create,
    vehicle_status_change,
)
from tuktuk.ledger.exits import driver_terminate
from tuktuk.ledger.missed import missed_payment_record
from tuktuk.ledger.models import DeductionProposal, DepositEntry, Transaction, TransactionStatus
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.payouts.models import Payout, PayoutState

pytestmark = pytest.mark.django_db

NOT_ALLOWED_EXIT = error_shape(NotAllowed("x")).cli_exit
TODAY = nairobi(2026, 3, 10, 10)  # the world is built on this day, after closing the day before


# --- the world: one row of everything an edge could change ---------------------------------


@dataclass
class World:
    manager: User
    accountant: User
    root: User
    accountant_token: str
    manager_token: str
    failed_payout: int
    unknown_payout: int
    uncaptured: int
    broken_driver: str  # its cached balance differs from its ledger
    proposal: int  # a deposit deduction waiting for a fleet manager (DRV-112001's missed day)
    refund: int  # a deposit refund waiting for a fleet manager
    terminated_driver: str  # the refund's driver: may be archived or restored
    substitute: str  # a substitute driver, covering TUK-004 on the 13th
    day_off: str  # a day the broken driver is off


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with time_machine.travel(nairobi(2026, 3, 9, 10), tick=False):
        for number in range(1, 6):
            make_driver(number)
        pay("W0", "400", account="TUK005")
        pay("W00", "100", account="TUK001")  # a driver never paid is not closed: misses nothing
        # Deposits: DRV-112001's missed day is proposed for a deduction at the close;
        # DRV-112003 leaves the fleet with one (a refund to decide).
        deposit_settings_set(driver_id="DRV-112001", actor="root", allow_target_deduction=True)
        deposit_add(driver_id="DRV-112001", amount="1000", kind="initial", reason="w", actor="root")
        deposit_add(driver_id="DRV-112003", amount="5000", kind="initial", reason="w", actor="root")
    with time_machine.travel(TODAY, tick=False):
        day_close_run()  # DayClose rows
        # A stored daily report of the closed day (issue 13: viewed and downloaded in the admin).
        report_store(kind=ReportKind.DAILY, start=TODAY.date() - dt.timedelta(days=1), actor="root")
        roles_ensure()
        manager = _user("manager", FLEET_MANAGERS)
        accountant = _user("accountant", ACCOUNTANTS)
        root = User.objects.create_superuser("root", "root@example.com", None)
        pay("W1", "1000")  # a held payout (instant payouts are off)
        failed = pay("W2", "500", account="TUK002").transaction
        unknown = pay("W3", "500", account="TUK003").transaction
        Payout.objects.filter(transaction=failed).update(state=PayoutState.FAILED)
        Payout.objects.filter(transaction=unknown).update(state=PayoutState.UNKNOWN)
        pay("UC1", "300", account="WRONG")  # uncaptured
        adjustment_add(driver_id="DRV-112002", amount="50", reason="owes", actor="root")
        missed_payment_record(
            trans_id="MISSED0001", amount="100", msisdn="0711222333",
            mpesa_time="20260310090000", vehicle_id="TUK-004", reason="never came", actor="root",
        )  # fmt: skip
        edit_balance_by_sql(Driver.objects.get(driver_id="DRV-112004"), "70")
        fix_driver_balance("DRV-112004", auto_fix=True, reason="world", actor="root")
        edit_balance_by_sql(Driver.objects.get(driver_id="DRV-112005"), "25")  # left broken
        body = confirmation_payload(trans_id="REPLAY1", amount="200", account="TUK001")
        Callback.objects.create(
            kind=CallbackKind.C2B_CONFIRMATION,
            state=CallbackState.FAILED,
            body=json.dumps(body),
            content_type="application/json",
            trans_id="REPLAY1",
            error="database unavailable",
            received_at=timezone.now(),
        )
        refund = driver_terminate(driver_id="DRV-112003", reason="world", actor="root")
        world_portal_and_sms()  # a driver's portal login, a problem report, SMS (issue 14)
        # Who drives today: a substitute and a cover, a vehicle charging, a roster, a day off.
        substitute = substitute_create(name="Sub", mpesa_number="0711000999", actor="root")
        substitute_assign_by(
            vehicle_id="TUK-004",
            substitute_id=substitute.driver_id,
            date_from="2026-03-13",
            actor="root",
        )
        vehicle_status_change(vehicle_id="TUK-005", status="Charging", reason="w", actor="root")
        preferred_day_off_set_by(driver_id="DRV-112001", weekday=2, actor="root")
        roster_generate_by(date_from="2026-03-16", date_to="2026-03-22", actor="root")
        day_off_set_by(driver_id="DRV-112005", day="2026-03-12", off=True, actor="root")
        _, accountant_token = api_token_create(user=accountant, name="reports")
        _, manager_token = api_token_create(user=manager, name="ops")
        yield World(
            manager=manager,
            accountant=accountant,
            root=root,
            accountant_token=accountant_token,
            manager_token=manager_token,
            failed_payout=Payout.objects.get(transaction=failed).pk,
            unknown_payout=Payout.objects.get(transaction=unknown).pk,
            uncaptured=Transaction.objects.get(trans_id="UC1").pk,
            broken_driver="DRV-112005",
            proposal=DeductionProposal.objects.get(driver__driver_id="DRV-112001").pk,
            refund=refund.pk,
            terminated_driver="DRV-112003",
            substitute=substitute.driver_id,
            day_off="2026-03-12",
        )


def _user(username: str, group: str) -> User:
    # No password: hashing one costs a second a user, and force_login needs none.
    user = User.objects.create_user(username, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def logged_in(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def snapshot(*, with_events: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Every row of every model of our apps (the token's last use aside: reading stamps it)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for label in OUR_APPS:
        for model in apps.get_app_config(label).get_models():
            if model._meta.proxy or (model is Event and not with_events):
                continue
            values = list(model._default_manager.order_by("pk").values())
            for row in values:
                row.pop("last_used_at", None)
            rows[model._meta.label] = values
    return rows


def actor_event(title: str, actor: str) -> bool:
    return Event.objects.filter(title=title, actor=actor).exists()


# --- (a) admin actions ---------------------------------------------------------------------


def _superuser_request() -> Any:
    request = RequestFactory().get("/admin/")
    request.user = User(username="collect", is_superuser=True, is_active=True, is_staff=True)
    return request


def _admin_actions() -> list[tuple[type[models.Model], str]]:
    found = []
    for model, model_admin in admin.site._registry.items():
        for name in model_admin.get_actions(_superuser_request()):
            found.append((model, name))
    return sorted(found, key=lambda item: (item[0]._meta.label, item[1]))


ADMIN_ACTIONS = _admin_actions()


def _key(model: type[models.Model], name: str) -> str:
    return f"{model._meta.label_lower}:{name}"


# What makes an action take its writing path (the reconciliation check only fixes once
# confirmed). An action posted without it would prove nothing.
# Actions whose service needs a reason ask for it first (admin_utils.action_reason).
ASKED = {"confirm_reason": "yes", "reason": "role test"}
ACTION_WRITE_DATA: dict[str, dict[str, str]] = {
    "fleet.driver:reconciliation_check": {"confirm_fix": "yes", "reason": "role test"},
    "fleet.driver:terminate_drivers": ASKED,
    "fleet.driver:restore_drivers": ASKED,
    "fleet.driver:reset_misses": ASKED,
    "ledger.deductionproposal:reject_proposals": ASKED,
    "ledger.depositrefund:reject_refunds": ASKED,
    "portal.problemreport:resolve": ASKED,
    "fleet.vehicle:mark_available": ASKED,
    "fleet.vehicle:mark_charging": ASKED,
    "fleet.vehicle:mark_maintenance": ASKED,
    "fleet.vehicle:mark_offline": ASKED,
}
# Actions any reader may run because they change nothing: none so far.
VIEW_ONLY_ACTIONS: set[str] = set()
# Django's own, refused to both roles (neither group has a delete permission).
DJANGO_ACTIONS = {"delete_selected"}
# Who may run each of ours, and the event that names them.
ACTION_POSITIVE: dict[str, tuple[str, str]] = {
    "mpesa.callback:replay": ("manager", EventTitle.CALLBACKS_REPLAYED),
    "payouts.payout:release_held": ("manager", EventTitle.PAYOUTS_RELEASED),
    "payouts.payout:retry_failed": ("manager", EventTitle.PAYOUT_RETRIED),
    "fleet.driver:reconciliation_check": ("manager", EventTitle.BALANCE_FIXED),
    "backoffice.apitoken:revoke": ("root", EventTitle.API_TOKEN_REVOKED),
    "fleet.driver:terminate_drivers": ("manager", EventTitle.DRIVER_TERMINATED),
    "fleet.driver:archive_drivers": ("manager", EventTitle.DRIVER_ARCHIVED),
    "fleet.driver:restore_drivers": ("manager", EventTitle.DRIVER_RESTORED),
    "fleet.driver:reset_misses": ("manager", EventTitle.MISSES_RESET),
    "ledger.deductionproposal:approve_proposals": ("manager", EventTitle.DEDUCTION_APPROVED),
    "ledger.deductionproposal:reject_proposals": ("manager", EventTitle.DEDUCTION_REJECTED),
    "ledger.depositrefund:approve_refunds": ("manager", EventTitle.REFUND_APPROVED),
    "ledger.depositrefund:reject_refunds": ("manager", EventTitle.REFUND_REJECTED),
    "portal.driveraccount:send_login_code": ("manager", EventTitle.DRIVER_LOGIN_CODE_SENT),
    "portal.driveraccount:unlock": ("manager", EventTitle.DRIVER_UNLOCKED),
    "portal.problemreport:resolve": ("manager", EventTitle.DRIVER_PROBLEM_RESOLVED),
    "fleet.vehicle:mark_available": ("manager", EventTitle.VEHICLE_STATUS_CHANGED),
    "fleet.vehicle:mark_charging": ("manager", EventTitle.VEHICLE_STATUS_CHANGED),
    "fleet.vehicle:mark_maintenance": ("manager", EventTitle.VEHICLE_STATUS_CHANGED),
    "fleet.vehicle:mark_offline": ("manager", EventTitle.VEHICLE_STATUS_CHANGED),
    "fleet.dayoff:remove_days_off": ("manager", EventTitle.ROSTER_CHANGED),
}


def test_every_admin_action_is_classified() -> None:
    assert ADMIN_ACTIONS, "no admin action found: the enumeration is broken"
    assert _key(Callback, "replay") in {_key(m, n) for m, n in ADMIN_ACTIONS}
    unclassified = [
        _key(model, name)
        for model, name in ADMIN_ACTIONS
        if name not in DJANGO_ACTIONS
        and _key(model, name) not in ACTION_POSITIVE
        and _key(model, name) not in VIEW_ONLY_ACTIONS
    ]
    assert not unclassified, f"admin actions without a role test: {unclassified}"


def _post_action(client: Client, model: type[models.Model], name: str) -> Any:
    pks = [str(pk) for pk in model._default_manager.values_list("pk", flat=True)]
    assert pks, f"the world has no {model._meta.label} to run {name} on"
    opts = model._meta
    return client.post(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        {
            "action": name,
            "_selected_action": pks,
            "index": "0",
            **ACTION_WRITE_DATA.get(_key(model, name), {}),
        },
    )


@pytest.mark.parametrize(
    ("model", "name"), ADMIN_ACTIONS, ids=[_key(m, n) for m, n in ADMIN_ACTIONS]
)
def test_admin_action_refused_to_accountants_and_anonymous(
    world: World, model: type[models.Model], name: str
) -> None:
    before = snapshot()
    anonymous = _post_action(Client(), model, name)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]

    response = _post_action(logged_in("accountant"), model, name)
    assert response.status_code != 500
    if _key(model, name) not in VIEW_ONLY_ACTIONS:
        request = RequestFactory().get("/admin/")
        request.user = world.accountant
        offered = name in admin.site._registry[model].get_actions(request)
        assert response.status_code == 403 or not offered, (response.status_code, offered)
    assert snapshot() == before


@pytest.mark.parametrize("key", sorted(ACTION_POSITIVE))
def test_admin_action_positive_control(world: World, key: str) -> None:
    ((model, name),) = [(m, n) for m, n in ADMIN_ACTIONS if _key(m, n) == key]
    username, title = ACTION_POSITIVE[key]
    before = snapshot()
    response = _post_action(logged_in(username), model, name)
    assert response.status_code in (200, 302)
    assert snapshot() != before
    assert actor_event(title, username)


# --- (a2) every admin's add and change forms ------------------------------------------------


REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


@pytest.mark.parametrize("model", REGISTERED, ids=[m._meta.label_lower for m in REGISTERED])
def test_admin_add_and_change_refused_to_accountants_and_anonymous(
    world: World, model: type[models.Model]
) -> None:
    opts = model._meta
    instance = model._default_manager.order_by("pk").first()
    assert instance is not None, f"the world has no {opts.label}"
    urls = [
        reverse(f"admin:{opts.app_label}_{opts.model_name}_add"),
        reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[instance.pk]),
        reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[instance.pk]),
    ]
    # What a form could carry: every editable field with the instance's own value changed.
    data = {"post": "yes", "daily_target": "1", "amount": "1", "description": "x", "name": "x"}
    before = snapshot()
    accountant = logged_in("accountant")
    for url in urls:
        anonymous = Client().post(url, data)
        assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"], url
        assert accountant.post(url, data).status_code == 403, url
    assert snapshot() == before


def _driver_pk(driver_id: str) -> int:
    return Driver.objects.get(driver_id=driver_id).pk


def test_admin_add_positive_control(world: World) -> None:
    before = snapshot()
    response = logged_in("manager").post(
        reverse("admin:ledger_adjustment_add"),
        {"driver": _driver_pk("DRV-112003"), "amount": "120", "description": "broken mirror"},
    )
    assert response.status_code == 302
    assert snapshot() != before
    assert actor_event(EventTitle.ADJUSTMENT_RECORDED, "manager")


def test_admin_day_off_add_positive_control(world: World) -> None:
    before = snapshot()
    response = logged_in("manager").post(
        reverse("admin:fleet_dayoff_add"),
        {"driver": _driver_pk("DRV-112002"), "day": "2026-03-13", "reason": "role test"},
    )
    assert response.status_code == 302
    assert snapshot() != before
    assert actor_event(EventTitle.ROSTER_CHANGED, "manager")
    assert DayOff.objects.filter(driver__driver_id="DRV-112002", created_by="manager").exists()


# --- (a3) the admins' own views (get_urls extras) -------------------------------------------


def _extra_views() -> list[tuple[type[models.Model], URLPattern]]:
    found = []
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        standard = {
            f"{opts.app_label}_{opts.model_name}_{suffix}"
            for suffix in ("changelist", "add", "history", "delete", "change")
        }
        for pattern in model_admin.get_urls():
            if isinstance(pattern, URLPattern) and pattern.name and pattern.name not in standard:
                found.append((model, pattern))
    return sorted(found, key=lambda item: str(item[1].name))


EXTRA_VIEWS = _extra_views()
# Views that only read: a POST to them must change nothing money-wise (a reconciliation may
# log the discrepancy it finds, as reading does).
READ_ONLY_VIEWS = {
    "mpesa_callback_duplicates",
    "fleet_driver_verification",
    "fleet_driver_statement",
    "ledger_depositaccount_report",
    "reports_storedreport_csv",
}
# Views that write: the form they take, who may, the event naming them.
WRITE_VIEWS: dict[str, tuple[Callable[[World], dict[str, str]], str, str]] = {
    "ledger_uncapturedpayment_assign": (
        lambda w: {"driver": str(_driver_pk("DRV-112001")), "mode": "send_share", "reason": "x"},
        "manager",
        EventTitle.UNCAPTURED_ASSIGNED,
    ),
    "ledger_depositentry_record": (
        lambda w: {
            "driver": str(_driver_pk("DRV-112002")),
            "movement": "add:top-up",
            "amount": "250",
            "reason": "role test",
        },
        "manager",
        EventTitle.DEPOSIT_RECORDED,
    ),
    "fleet_assignment_handover": (
        lambda w: {"vehicle": str(_vehicle_pk("TUK-005")), "driver": str(_driver_pk("DRV-112004"))},
        "manager",
        EventTitle.VEHICLE_ASSIGNED,
    ),
    "fleet_assignment_cover": (
        lambda w: {
            "substitute": str(_driver_pk(w.substitute)),
            "vehicle": str(_vehicle_pk("TUK-005")),
            "date_from": "2026-03-14",
        },
        "manager",
        EventTitle.SUBSTITUTE_ASSIGNED,
    ),
    "fleet_driver_add_substitute": (
        lambda w: {"name": "Sub Two", "mpesa_number": "0711000998"},
        "manager",
        EventTitle.SUBSTITUTE_ADDED,
    ),
    "fleet_rosterperiod_generate": (
        lambda w: {"date_from": "2026-03-23", "date_to": "2026-03-29"},
        "manager",
        EventTitle.ROSTER_CHANGED,
    ),
}
# What each write view's positive control must have done, beyond the event.
WRITE_VIEW_EFFECTS: dict[str, Callable[[World], bool]] = {
    "ledger_uncapturedpayment_assign": lambda w: (
        Transaction.objects.get(pk=w.uncaptured).status != TransactionStatus.UNMATCHED
    ),
    "ledger_depositentry_record": lambda w: DepositEntry.objects.filter(
        driver__driver_id="DRV-112002", amount=Decimal("250"), actor="manager"
    ).exists(),
    "fleet_assignment_handover": lambda w: Assignment.objects.filter(
        vehicle__vehicle_id="TUK-005", driver__driver_id="DRV-112004", created_by="manager"
    ).exists(),
    "fleet_assignment_cover": lambda w: Assignment.objects.filter(
        vehicle__vehicle_id="TUK-005", driver__driver_id=w.substitute, created_by="manager"
    ).exists(),
    "fleet_driver_add_substitute": lambda w: Driver.objects.filter(
        name="Sub Two", is_substitute=True
    ).exists(),
    "fleet_rosterperiod_generate": lambda w: RosterPeriod.objects.filter(
        created_by="manager"
    ).exists(),
}


def _vehicle_pk(vehicle_id: str) -> int:
    return Vehicle.objects.get(vehicle_id=vehicle_id).pk


def _view_url(model: type[models.Model], pattern: URLPattern, world: World) -> str:
    if "<" not in str(pattern.pattern):
        return reverse(f"admin:{pattern.name}")
    pk = world.uncaptured if model._meta.proxy else None
    if pk is None:
        first = model._default_manager.order_by("pk").first()
        assert first is not None
        pk = first.pk
    return reverse(f"admin:{pattern.name}", args=[pk])


# Django's own writing views: refused to both roles (no auth permissions), no money.
DJANGO_WRITE_VIEWS = {"auth_user_password_change"}


def test_every_admin_view_is_classified() -> None:
    names = {str(pattern.name) for _, pattern in EXTRA_VIEWS}
    assert "ledger_uncapturedpayment_assign" in names
    assert set(WRITE_VIEW_EFFECTS) == set(WRITE_VIEWS)
    unclassified = names - READ_ONLY_VIEWS - set(WRITE_VIEWS) - DJANGO_WRITE_VIEWS
    assert not unclassified, f"admin views without a role test: {sorted(unclassified)}"


@pytest.mark.parametrize(
    ("model", "pattern"), EXTRA_VIEWS, ids=[str(p.name) for _, p in EXTRA_VIEWS]
)
def test_admin_view_post_refused_to_accountants_and_anonymous(
    world: World, model: type[models.Model], pattern: URLPattern
) -> None:
    url = _view_url(model, pattern, world)
    name = str(pattern.name)
    data = WRITE_VIEWS[name][0](world) if name in WRITE_VIEWS else {"reason": "x"}
    before = snapshot(with_events=name not in WRITE_VIEWS)
    anonymous = Client().post(url, data)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    response = logged_in("accountant").post(url, data)
    if name in WRITE_VIEWS or name in DJANGO_WRITE_VIEWS:
        assert response.status_code == 403
    else:
        assert response.status_code == 200
    assert snapshot(with_events=name not in WRITE_VIEWS) == before


@pytest.mark.parametrize("name", sorted(WRITE_VIEWS))
def test_admin_view_positive_control(world: World, name: str) -> None:
    ((model, pattern),) = [(m, p) for m, p in EXTRA_VIEWS if p.name == name]
    data, username, title = WRITE_VIEWS[name]
    before = snapshot()
    response = logged_in(username).post(_view_url(model, pattern, world), data(world))
    assert response.status_code == 302
    assert snapshot() != before
    assert actor_event(title, username)
    assert WRITE_VIEW_EFFECTS[name](world)


# --- (b) the JSON API ----------------------------------------------------------------------


def _api_writes() -> list[tuple[str, str]]:
    found = []
    for prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                for method in operation.methods:
                    if method not in ("GET", "HEAD", "OPTIONS"):
                        found.append((method, f"{prefix}{path}"))
    return sorted(found)


API_WRITES = _api_writes()
# The body that makes each route write (a preview would prove nothing), and the event.
API_WRITE_BODIES: dict[
    tuple[str, str], tuple[dict[str, Any] | Callable[[World], dict[str, Any]], str]
] = {
    ("POST", "/drivers/{driver_id}/fix-balance"): (
        {"auto_fix": True, "reason": "role test"},
        EventTitle.BALANCE_FIXED,
    ),
    ("POST", "/reconciliation"): (
        {"auto_fix": True, "reason": "role test"},
        EventTitle.BALANCE_FIXED,
    ),
    ("POST", "/drivers/{driver_id}/deposit"): (
        {"direction": "add", "type": "top-up", "amount": "150.00", "reason": "role test"},
        EventTitle.DEPOSIT_RECORDED,
    ),
    ("PATCH", "/drivers/{driver_id}/deposit"): (
        {"required": True, "initial_amount": "2000"},
        EventTitle.DEPOSIT_SETTINGS_CHANGED,
    ),
    ("POST", "/deposit-proposals/{proposal_id}/approve"): ({}, EventTitle.DEDUCTION_APPROVED),
    ("POST", "/deposit-proposals/{proposal_id}/reject"): (
        {"reason": "role test"},
        EventTitle.DEDUCTION_REJECTED,
    ),
    ("POST", "/drivers/{driver_id}/terminate"): (
        {"reason": "role test"},
        EventTitle.DRIVER_TERMINATED,
    ),
    ("POST", "/drivers/{driver_id}/archive"): ({}, EventTitle.DRIVER_ARCHIVED),
    ("POST", "/drivers/{driver_id}/restore"): ({"reason": "role test"}, EventTitle.DRIVER_RESTORED),
    ("POST", "/drivers/{driver_id}/reset-misses"): (
        {"reason": "role test"},
        EventTitle.MISSES_RESET,
    ),
    ("POST", "/refunds/approve"): (
        lambda w: {"refund_ids": [w.refund]},  # a body only the world knows
        EventTitle.REFUND_APPROVED,
    ),
    ("POST", "/refunds/{refund_id}/reject"): ({"reason": "role test"}, EventTitle.REFUND_REJECTED),
    ("POST", "/vehicles/{vehicle_id}/status"): (
        {"status": "Maintenance", "reason": "role test"},
        EventTitle.VEHICLE_STATUS_CHANGED,
    ),
    ("POST", "/vehicles/{vehicle_id}/assign"): (
        {"driver_id": "DRV-112004", "reason": "role test"},
        EventTitle.VEHICLE_ASSIGNED,
    ),
    ("POST", "/substitutes"): (
        {"name": "Sub Two", "mpesa_number": "0711000998"},
        EventTitle.SUBSTITUTE_ADDED,
    ),
    ("POST", "/substitutes/{driver_id}/cover"): (
        {"vehicle_id": "TUK-005", "from": "2026-03-14", "reason": "role test"},
        EventTitle.SUBSTITUTE_ASSIGNED,
    ),
    ("POST", "/roster/generate"): (
        {"from": "2026-03-23", "to": "2026-03-29"},
        EventTitle.ROSTER_CHANGED,
    ),
    ("PUT", "/drivers/{driver_id}/days-off/{day}"): (
        {"reason": "role test"},
        EventTitle.ROSTER_CHANGED,
    ),
    ("DELETE", "/drivers/{driver_id}/days-off/{day}"): ({}, EventTitle.ROSTER_CHANGED),
}
# The path parameters the routes are called with (the broken driver, unless a route needs
# another: only a terminated driver is archived or restored).
API_DRIVERS: dict[tuple[str, str], Callable[[World], str]] = {
    ("POST", "/drivers/{driver_id}/archive"): lambda w: w.terminated_driver,
    ("POST", "/drivers/{driver_id}/restore"): lambda w: w.terminated_driver,
    ("POST", "/substitutes/{driver_id}/cover"): lambda w: w.substitute,
}
# The vehicle the routes are called with (one without a fare since now: a handover may start
# there), and the day (a free one; the day off, to take it back).
API_VEHICLE = "TUK-005"
API_DAYS: dict[tuple[str, str], Callable[[World], str]] = {
    ("DELETE", "/drivers/{driver_id}/days-off/{day}"): lambda w: w.day_off,
}


def _api_url(method: str, path: str, world: World) -> str:
    driver = API_DRIVERS.get((method, path), lambda w: w.broken_driver)(world)
    day = API_DAYS.get((method, path), lambda w: "2026-03-13")(world)
    return "/api/v1" + path.format(
        driver_id=driver,
        proposal_id=world.proposal,
        refund_id=world.refund,
        vehicle_id=API_VEHICLE,
        day=day,
    )


def _api_call(client: Client, method: str, path: str, world: World, token: str | None) -> Any:
    url = _api_url(method, path, world)
    body = API_WRITE_BODIES[(method, path)][0]
    if callable(body):
        body = body(world)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.generic(method, url, json.dumps(body), "application/json", **headers)


def test_every_api_write_is_classified() -> None:
    assert ("POST", "/reconciliation") in API_WRITES
    unclassified = sorted(set(API_WRITES) - set(API_WRITE_BODIES))
    assert not unclassified, f"API routes that write without a role test: {unclassified}"


@pytest.mark.parametrize(("method", "path"), API_WRITES, ids=[f"{m} {p}" for m, p in API_WRITES])
def test_api_write_refused_without_token_and_to_accountants(
    world: World, client: Client, method: str, path: str
) -> None:
    before = snapshot()
    assert _api_call(client, method, path, world, None).status_code == 401
    assert _api_call(client, method, path, world, "not-a-token").status_code == 401
    assert _api_call(client, method, path, world, world.accountant_token).status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path"), API_WRITES, ids=[f"{m} {p}" for m, p in API_WRITES])
def test_api_write_positive_control(world: World, client: Client, method: str, path: str) -> None:
    before = snapshot()
    response = _api_call(client, method, path, world, world.manager_token)
    assert response.status_code == 200, response.content
    assert snapshot() != before
    assert actor_event(API_WRITE_BODIES[(method, path)][1], "manager")


# --- (b2) the legacy app's calls (/api/method/, backoffice.frappe) -------------------------


FRAPPE_WRITES = sorted(path for path, method in FRAPPE_METHODS.items() if method.writes_when)
# The arguments that make each legacy call write (without them it is a check or a preview).
FRAPPE_WRITE_ARGUMENTS: dict[str, dict[str, str]] = {
    "tuktuk_management.api.tuktuk.fix_driver_balance": {
        "driver_name": "DRV-112005",
        "auto_fix": "1",
    },
    "tuktuk_management.api.tuktuk.reconcile_all_drivers_balances": {"auto_fix": "true"},
}
# Every call that must change no money, whoever may make it (the writes' previews included).
FRAPPE_READS: list[tuple[str, dict[str, str]]] = [
    ("tuktuk_management.api.tuktuk.reconcile_driver_balance", {"driver_name": "DRV-112005"}),
    ("tuktuk_management.api.tuktuk.fix_driver_balance", {"driver_name": "DRV-112005"}),
    ("tuktuk_management.api.tuktuk.reconcile_all_drivers_balances", {"auto_fix": "0"}),
    ("frappe.auth.get_logged_user", {}),
]


def _frappe_keys(world: World) -> dict[str, str]:
    keys = {}
    for user in (world.manager, world.accountant):
        _, key, secret = frappe_api_key_create(user=user)
        keys[user.username] = f"{key}:{secret}"
    return keys


def _frappe_call(client: Client, path: str, arguments: dict[str, str], key: str | None) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"token {key}"} if key else {}
    return client.post(f"/api/method/{path}", arguments, **headers)


def test_every_legacy_call_is_classified() -> None:
    assert "tuktuk_management.api.tuktuk.fix_driver_balance" in FRAPPE_WRITES
    assert set(FRAPPE_WRITES) == set(FRAPPE_WRITE_ARGUMENTS)
    assert set(FRAPPE_METHODS) == {path for path, _ in FRAPPE_READS}


@pytest.mark.parametrize("path", FRAPPE_WRITES)
def test_legacy_write_refused_without_key_and_to_accountants(
    world: World, client: Client, path: str
) -> None:
    keys = _frappe_keys(world)
    arguments = FRAPPE_WRITE_ARGUMENTS[path]
    before = snapshot()
    assert _frappe_call(client, path, arguments, None).status_code == 401
    assert _frappe_call(client, path, arguments, "not:a-key").status_code == 401
    assert _frappe_call(client, path, arguments, world.accountant_token).status_code == 401
    assert _frappe_call(client, path, arguments, keys["accountant"]).status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("path", FRAPPE_WRITES)
def test_legacy_write_positive_control(world: World, client: Client, path: str) -> None:
    keys = _frappe_keys(world)
    before = snapshot()
    response = _frappe_call(client, path, FRAPPE_WRITE_ARGUMENTS[path], keys["manager"])
    assert response.status_code == 200, response.content
    assert json.loads(response.content)["message"]["success"] is True
    assert snapshot() != before
    assert actor_event(EventTitle.BALANCE_FIXED, "manager")


@pytest.mark.parametrize(
    ("path", "arguments"), FRAPPE_READS, ids=[f"{p} {a}" for p, a in FRAPPE_READS]
)
def test_legacy_reads_change_no_money(
    world: World, client: Client, path: str, arguments: dict[str, str]
) -> None:
    keys = _frappe_keys(world)
    before = snapshot(with_events=False)
    for key in keys.values():
        assert _frappe_call(client, path, arguments, key).status_code == 200
    assert snapshot(with_events=False) == before


# --- (c) management commands ---------------------------------------------------------------


OUR_COMMANDS = sorted(name for name, app in get_commands().items() if app.startswith("tuktuk"))
# Commands that write nothing, whoever runs them.
READ_ONLY_COMMANDS = {"duplicates", "statement", "assignments"}
# The system's own processes, not operator tools: they act as the service (the worker is what
# closes days and sends payouts on schedule, the engine posts what the webhook stored; serve and
# daraja-sim hold no data; simulate only
# speaks to a server through the callback URL, whose token is its authentication).
SYSTEM_COMMANDS = {"worker", "engine", "serve", "daraja_sim", "simulate"}

FLEET_CSV = (
    "driver_id,driver_name,mpesa_number,vehicle_id,mpesa_account,daily_target,fare_percentage\n"
    "DRV-112001,Driver 1,0700000001,TUK-001,TUK001,4000,50\n"
)


MISSED_ARGV = (
    "record-missed --trans-id MISSED0002 --amount 200 --msisdn 0711222333 "
    "--time 20260310093000 --vehicle TUK-001 --reason x"
).split()


@dataclass(frozen=True)
class Invocation:
    argv: Callable[[World, Path], list[str]]
    role: str
    title: str | None  # the event naming the actor (the demo records none: nobody to name)
    at: dt.datetime = TODAY


WRITING_COMMANDS: dict[str, list[Invocation]] = {
    "adjustment": [
        Invocation(
            lambda w, p: ["add", "DRV-112001", "100", "--reason", "x"],
            "manager",
            EventTitle.ADJUSTMENT_RECORDED,
        )
    ],
    "payment": [
        Invocation(
            lambda w, p: MISSED_ARGV,
            "manager",
            EventTitle.MISSED_RECORDED,
        )
    ],
    "uncaptured": [
        Invocation(
            lambda w, p: ["assign", "UC1", "DRV-112001", "--send-share", "--reason", "x"],
            "manager",
            EventTitle.UNCAPTURED_ASSIGNED,
        )
    ],
    "payouts": [
        Invocation(lambda w, p: ["release", "--all"], "manager", EventTitle.PAYOUTS_RELEASED),
        Invocation(
            lambda w, p: ["retry", str(w.failed_payout), "--reason", "x"],
            "manager",
            EventTitle.PAYOUT_RETRIED,
        ),
        Invocation(
            lambda w, p: ["resolve", str(w.unknown_payout), "--failed", "--reason", "x"],
            "manager",
            EventTitle.PAYOUT_RESOLVED,
        ),
    ],
    "reconcile": [
        Invocation(
            lambda w, p: [w.broken_driver, "--fix", "--reason", "x"],
            "manager",
            EventTitle.BALANCE_FIXED,
        ),
        Invocation(lambda w, p: ["--all", "--fix"], "manager", EventTitle.BALANCE_FIXED),
    ],
    "close_day": [
        Invocation(
            lambda w, p: [],
            "manager",
            EventTitle.DAYS_CLOSED_BY_OPERATOR,
            at=nairobi(2026, 3, 11, 10),
        )
    ],
    "replay_callbacks": [
        Invocation(lambda w, p: [], "manager", EventTitle.CALLBACKS_REPLAYED),
    ],
    "import_fleet": [
        Invocation(lambda w, p: [_csv(p)], "manager", EventTitle.FLEET_IMPORTED),
    ],
    "create_api_token": [
        Invocation(lambda w, p: ["accountant"], "manager", EventTitle.API_TOKEN_CREATED),
        Invocation(
            lambda w, p: ["accountant", "--frappe"], "manager", EventTitle.API_TOKEN_CREATED
        ),
    ],
    "import_legacy": [
        Invocation(lambda w, p: [_legacy_export(p)], "manager", EventTitle.FLEET_IMPORTED),
    ],
    "demo": [Invocation(lambda w, p: [], "root", None)],
    "deposit": [
        Invocation(
            lambda w, p: ["add", "DRV-112002", "500", "--type", "top-up", "--reason", "x"],
            "manager",
            EventTitle.DEPOSIT_RECORDED,
        ),
        Invocation(
            lambda w, p: ["deduct", "DRV-112001", "100", "--type", "damage", "--reason", "x"],
            "manager",
            EventTitle.DEPOSIT_DEDUCTED,
        ),
        Invocation(
            lambda w, p: ["settings", "DRV-112002", "--required", "yes", "--initial", "1500"],
            "manager",
            EventTitle.DEPOSIT_SETTINGS_CHANGED,
        ),
        Invocation(
            lambda w, p: ["approve", str(w.proposal)], "manager", EventTitle.DEDUCTION_APPROVED
        ),
        Invocation(
            lambda w, p: ["reject", str(w.proposal), "--reason", "x"],
            "manager",
            EventTitle.DEDUCTION_REJECTED,
        ),
    ],
    "driver": [
        Invocation(
            lambda w, p: ["terminate", "DRV-112002", "--reason", "x"],
            "manager",
            EventTitle.DRIVER_TERMINATED,
        ),
        Invocation(
            lambda w, p: ["archive", w.terminated_driver], "manager", EventTitle.DRIVER_ARCHIVED
        ),
        Invocation(
            lambda w, p: ["restore", w.terminated_driver, "--reason", "x"],
            "manager",
            EventTitle.DRIVER_RESTORED,
        ),
        Invocation(
            lambda w, p: ["reset-misses", "DRV-112001", "--reason", "x"],
            "manager",
            EventTitle.MISSES_RESET,
        ),
    ],
    "refund": [
        Invocation(lambda w, p: ["approve", str(w.refund)], "manager", EventTitle.REFUND_APPROVED),
        Invocation(
            lambda w, p: ["reject", str(w.refund), "--reason", "x"],
            "manager",
            EventTitle.REFUND_REJECTED,
        ),
    ],
    # Who drives today (issue 11). TUK-005 has had no fare since now: a handover may start there.
    "vehicle": [
        Invocation(
            lambda w, p: ["status", "TUK-005", "Maintenance", "--reason", "x"],
            "manager",
            EventTitle.VEHICLE_STATUS_CHANGED,
        )
    ],
    "assign": [
        Invocation(
            lambda w, p: ["TUK-005", "DRV-112004", "--reason", "x"],
            "manager",
            EventTitle.VEHICLE_ASSIGNED,
        ),
        Invocation(lambda w, p: ["TUK-005", "--none"], "manager", EventTitle.VEHICLE_ASSIGNED),
    ],
    "unassign": [Invocation(lambda w, p: ["TUK-005"], "manager", EventTitle.VEHICLE_ASSIGNED)],
    "substitute": [
        Invocation(
            lambda w, p: ["add", "--name", "Sub Two", "--mpesa-number", "0711000998"],
            "manager",
            EventTitle.SUBSTITUTE_ADDED,
        ),
        Invocation(
            lambda w, p: ["cover", w.substitute, "TUK-005", "--from", "2026-03-14"],
            "manager",
            EventTitle.SUBSTITUTE_ASSIGNED,
        ),
    ],
    "roster": [
        Invocation(
            lambda w, p: ["generate", "--from", "2026-03-23", "--to", "2026-03-29"],
            "manager",
            EventTitle.ROSTER_CHANGED,
        ),
        Invocation(
            lambda w, p: ["off", "DRV-112001", "2026-03-13", "--reason", "x"],
            "manager",
            EventTitle.ROSTER_CHANGED,
        ),
        Invocation(
            lambda w, p: ["on", w.broken_driver, w.day_off], "manager", EventTitle.ROSTER_CHANGED
        ),
        Invocation(
            lambda w, p: ["preferred", "DRV-112002", "fri"], "manager", EventTitle.ROSTER_CHANGED
        ),
    ],
    # Deletes stored evidence (after archiving it): Django's delete permissions, a superuser's.
    "sms": [
        Invocation(
            lambda w, p: ["send", "DRV-112001", "--text", "x"], "manager", EventTitle.SMS_QUEUED
        ),
        Invocation(
            lambda w, p: ["broadcast", "--all", "--text", "x"], "manager", EventTitle.SMS_QUEUED
        ),
        Invocation(
            lambda w, p: ["retry", str(world_unknown_sms()), "--reason", "x"],
            "manager",
            EventTitle.SMS_RETRIED,
        ),
    ],
    "portal": [
        Invocation(
            lambda w, p: ["pin", "DRV-112001", "--pin", "2580"],
            "manager",
            EventTitle.DRIVER_PIN_SET,
        ),
        Invocation(
            lambda w, p: ["pin", "DRV-112001", "--send-code"],
            "manager",
            EventTitle.DRIVER_LOGIN_CODE_SENT,
        ),
        Invocation(lambda w, p: ["unlock", "DRV-112002"], "manager", EventTitle.DRIVER_UNLOCKED),
        Invocation(
            lambda w, p: ["resolve", str(ProblemReport.objects.get().pk), "--answer", "x"],
            "manager",
            EventTitle.DRIVER_PROBLEM_RESOLVED,
        ),
    ],
    "archive": [
        Invocation(lambda w, p: ["--older-than", "1"], "root", EventTitle.RECORDS_ARCHIVED)
    ],
}
# Commands that write only with the provider's answer (Daraja): refused here like the others;
# their positive control runs against the Daraja simulator (tests/mpesa/test_pull.py).
PROVIDER_COMMANDS: dict[str, list[Invocation]] = {
    "pull": [
        Invocation(lambda w, p: ["run"], "manager", EventTitle.PULL_RUN),
        Invocation(lambda w, p: ["register", "--nominated-number", "0700000000"], "manager", None),
    ],
    # Its positive control: tests/mpesa/test_registration.py (`mpesa check` changes nothing).
    "mpesa": [Invocation(lambda w, p: ["register-urls"], "manager", None)],
}
INVOCATIONS = [
    (name, index) for name, calls in sorted(WRITING_COMMANDS.items()) for index in range(len(calls))
]
REFUSED = INVOCATIONS + [
    (name, index)
    for name, calls in sorted(PROVIDER_COMMANDS.items())
    for index in range(len(calls))
]


def _csv(directory: Path) -> str:
    path = directory / "fleet.csv"
    path.write_text(FLEET_CSV)
    return str(path)


def _legacy_export(directory: Path) -> str:
    """A legacy app's export of one vehicle and its driver (tuktuk import-legacy)."""
    export = directory / "legacy"
    export.mkdir(exist_ok=True)
    vehicle = {"name": "TUK-885-901", "mpesa_account": "LEG901"}
    driver = {
        "name": "DRV-113001",
        "driver_name": "Legacy Driver",
        "mpesa_number": "0712113001",
        "assigned_tuktuk": "TUK-885-901",
        "current_balance": 120.0,
        "deposit_transactions": [{"idx": 1, "transaction_type": "Initial Deposit", "amount": 500}],
    }
    (export / "TukTuk Vehicle.json").write_text(json.dumps({"data": [vehicle]}))
    (export / "TukTuk Driver.json").write_text(json.dumps({"data": [driver]}))
    return str(export)


def test_every_command_is_classified() -> None:
    assert "replay_callbacks" in OUR_COMMANDS and "close_day" in OUR_COMMANDS
    unclassified = (
        set(OUR_COMMANDS)
        - READ_ONLY_COMMANDS
        - SYSTEM_COMMANDS
        - set(WRITING_COMMANDS)
        - set(PROVIDER_COMMANDS)
    )
    assert not unclassified, f"commands neither read-only nor proven to refuse: {unclassified}"
    classified = (
        READ_ONLY_COMMANDS | SYSTEM_COMMANDS | set(WRITING_COMMANDS) | set(PROVIDER_COMMANDS)
    )
    gone = classified - set(OUR_COMMANDS)
    assert not gone, f"classified commands that no longer exist: {gone}"


def _run(name: str, argv: list[str]) -> None:
    call_command(name, *argv, stdout=_Sink(), stderr=_Sink())


class _Sink:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(("name", "index"), REFUSED, ids=[f"{n}-{i}" for n, i in REFUSED])
def test_command_refused_to_accountants_and_to_nobody(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, index: int
) -> None:
    invocation = {**WRITING_COMMANDS, **PROVIDER_COMMANDS}[name][index]
    with time_machine.travel(invocation.at, tick=False):
        argv = invocation.argv(world, tmp_path)
        before = snapshot()
        monkeypatch.delenv("TUKTUK_OPERATOR", raising=False)
        with pytest.raises(CommandError):  # nobody named: who is acting?
            _run(name, argv)
        with pytest.raises(CommandError) as by_flag:
            _run(name, [*argv, "--user", "accountant"])
        assert by_flag.value.returncode == NOT_ALLOWED_EXIT, by_flag.value
        monkeypatch.setenv("TUKTUK_OPERATOR", "accountant")
        with pytest.raises(CommandError) as by_env:
            _run(name, argv)
        assert by_env.value.returncode == NOT_ALLOWED_EXIT, by_env.value
        assert snapshot() == before


@pytest.mark.parametrize(("name", "index"), INVOCATIONS, ids=[f"{n}-{i}" for n, i in INVOCATIONS])
def test_command_positive_control(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, index: int
) -> None:
    invocation = WRITING_COMMANDS[name][index]
    monkeypatch.delenv("TUKTUK_OPERATOR", raising=False)
    monkeypatch.setenv("TUKTUK_DEMO_ADMIN_PASSWORD", "demo-pw-for-tests")
    with time_machine.travel(invocation.at, tick=False):
        before = snapshot()
        try:
            _run(name, [*invocation.argv(world, tmp_path), "--user", invocation.role])
        except SystemExit as exit_:  # reconcile --all: 1 while discrepancies remain
            assert exit_.code == 1 and name == "reconcile"
        assert snapshot() != before
        if invocation.title is not None:
            assert actor_event(invocation.title, invocation.role)


def test_an_accountant_may_still_read(world: World) -> None:
    """The control for the refusals: the Accountant's login and token do work."""
    assert logged_in("accountant").get("/admin/mpesa/callback/").status_code == 200
    response = Client().get(
        "/api/v1/drivers", HTTP_AUTHORIZATION=f"Bearer {world.accountant_token}"
    )
    assert response.status_code == 200
    _run("statement", ["DRV-112001"])
