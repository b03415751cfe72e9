"""The admin's theme (django-unfold): branding and the sidebar, read by settings.UNFOLD.

Imported by the settings, so it imports no model: the links are lazy, and each sidebar item is
shown to users who may view its list (the same permission the admin checks on the list).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.templatetags.static import static
from django.urls import reverse_lazy


def _may_view(*perms: str) -> Callable[[HttpRequest], bool]:
    def check(request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and any(user.has_perm(p) for p in perms))

    return check


def _staff(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_staff)


def _item(title: str, icon: str, app: str, model: str) -> dict[str, Any]:
    """A model's list, shown to whoever may view (or change) it."""
    return {
        "title": title,
        "icon": icon,
        "link": reverse_lazy(f"admin:{app}_{model}_changelist"),
        "permission": _may_view(f"{app}.view_{model}", f"{app}.change_{model}"),
    }


def _group(title: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"title": title, "separator": True, "collapsible": False, "items": list(items)}


def _logo(request: HttpRequest) -> str:
    return static("backoffice/logo.svg")


def _admin_css(request: HttpRequest) -> str:
    """Our additions: the plain pages' tables and forms, the totals row (backoffice/admin.css)."""
    return static("backoffice/admin.css")


NAVIGATION = [
    _group(
        "Today",
        {
            "title": "Dashboard",
            "icon": "dashboard",
            "link": reverse_lazy("admin:index"),
            "permission": _staff,
        },
    ),
    _group(
        "Money",
        _item("Transactions", "receipt_long", "ledger", "transaction"),
        _item("Payouts", "payments", "payouts", "payout"),
        _item("Ledger entries", "menu_book", "ledger", "ledgerentry"),
        _item("Uncaptured payments", "help_center", "ledger", "uncapturedpayment"),
        _item("Missed payments", "search", "ledger", "missedpayment"),
        _item("Adjustments", "tune", "ledger", "adjustment"),
        _item("Day closes", "event_available", "ledger", "dayclose"),
        _item("Balance corrections", "build", "ledger", "balancecorrection"),
        _item("Deposit accounts", "savings", "ledger", "depositaccount"),
        _item("Deposit entries", "account_balance_wallet", "ledger", "depositentry"),
        _item("Deposit refunds", "undo", "ledger", "depositrefund"),
        _item("Deduction proposals", "rule", "ledger", "deductionproposal"),
    ),
    _group(
        "Fleet",
        _item("Drivers", "badge", "fleet", "driver"),
        _item("Vehicles", "electric_rickshaw", "fleet", "vehicle"),
        _item("Assignments", "swap_horiz", "fleet", "assignment"),
        _item("Days off", "event_busy", "fleet", "dayoff"),
        _item("Roster periods", "calendar_month", "fleet", "rosterperiod"),
        _item("Fleet settings", "settings", "fleet", "fleetsettings"),
    ),
    _group("M-Pesa", _item("Callbacks", "call_received", "mpesa", "callback")),
    _group(
        "Drivers",
        _item("Portal accounts", "key", "portal", "driveraccount"),
        _item("Problem reports", "report", "portal", "problemreport"),
        _item("SMS log", "sms", "sms", "smsmessage"),
        _item("SMS delivery reports", "inbox", "sms", "deliveryreport"),
    ),
    _group(
        "Reports",
        {
            "title": "Stored reports",
            "icon": "summarize",
            "link": reverse_lazy("admin:reports_storedreport_changelist"),
            "permission": _staff,
        },
    ),
    _group(
        "System",
        _item("Events", "history", "core", "event"),
        _item("API tokens", "token", "backoffice", "apitoken"),
        _item("Users", "person", "auth", "user"),
        _item("Groups", "group", "auth", "group"),
    ),
]

UNFOLD_SETTINGS: dict[str, Any] = {
    "SITE_TITLE": "TukTuk Ledger",
    "SITE_HEADER": "TukTuk Ledger",
    "SITE_SUBHEADER": "M-Pesa ledger for the fleet",
    "SITE_URL": "/",
    "SITE_ICON": lambda request: static("backoffice/logo.svg"),
    "SITE_FAVICONS": [
        {
            "rel": "icon",
            "type": "image/svg+xml",
            "href": lambda request: static("backoffice/logo.svg"),
        },
    ],
    "SHOW_VIEW_ON_SITE": False,
    "STYLES": [_admin_css],
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": False,
        "navigation": NAVIGATION,
    },
}
