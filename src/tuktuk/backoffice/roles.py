"""Who may do what. Money actions need a fleet manager's permissions; accountants read."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, AnonymousUser

from tuktuk.core.errors import NotAllowed

FLEET_MANAGERS = "Fleet managers"
ACCOUNTANTS = "Accountants"

ADJUST = "ledger.add_adjustment"
ASSIGN_UNCAPTURED = "ledger.assign_uncaptured"
RECORD_MISSED = "ledger.record_missed"
FIX_BALANCE = "ledger.add_balancecorrection"
MANAGE_PAYOUTS = "payouts.manage_payouts"
# Archiving deletes stored evidence (after writing it to a file): Django's own delete
# permissions, which neither role holds; a superuser, or a user given both, runs it.
ARCHIVE = ("mpesa.delete_callback", "core.delete_event")
REPLAY_CALLBACKS = "mpesa.replay_callbacks"
CLOSE_DAYS = "ledger.close_days"
MANAGE_DEPOSITS = "ledger.manage_deposits"
# Terminating, archiving and restoring a driver changes the driver and decides their money.
MANAGE_EXITS = ("fleet.change_driver", "ledger.manage_deposits")
# The legacy "Reset Consecutive Misses" changes the driver only (its count and review flag).
RESET_MISSES = "fleet.change_driver"
# Who drives today (issue 11): a vehicle's status, its assignments (handovers) and substitutes'
# covers change the vehicle; adding a substitute adds a driver; the roster, days off and a
# driver's preferred day off change the driver. Fleet managers hold all three.
MANAGE_VEHICLES = "fleet.change_vehicle"
ADD_SUBSTITUTE = "fleet.add_driver"
MANAGE_ROSTER = "fleet.change_driver"
CREATE_API_TOKENS = "backoffice.add_apitoken"
# Driver SMS and the driver portal (issue 14): texting drivers costs money and speaks for the
# fleet; a driver's PIN, login codes and lockout open the driver's own data to whoever holds them.
SEND_SMS = "sms.send_sms"
MANAGE_DRIVER_ACCOUNTS = "portal.manage_driver_accounts"
RESOLVE_PROBLEMS = "portal.change_problemreport"
# The group of the drivers' own logins (the portal): no permission at all, only their own data.
DRIVERS = "Drivers"
# An import creates and changes drivers (their targets and fare percentages) and vehicles.
# The demo creates a superuser: on a database with operators, only a superuser may run it.
DEMO = ("auth.add_user", "auth.change_user", "fleet.add_driver", "fleet.add_vehicle")
IMPORT_FLEET = (
    "fleet.add_driver",
    "fleet.change_driver",
    "fleet.add_vehicle",
    "fleet.change_vehicle",
)
# The legacy import also sets the fleet settings, opening balances and deposit histories.
IMPORT_LEGACY = (
    *IMPORT_FLEET,
    "fleet.change_fleetsettings",
    "ledger.add_balancecorrection",
    "ledger.manage_deposits",
)
# Registering our callback URLs with Daraja decides where M-Pesa reports every payment.
MPESA_SETUP = "fleet.change_fleetsettings"


OUR_APPS = ["core", "fleet", "ledger", "payouts", "mpesa", "backoffice", "portal", "sms"]
MONEY_PERMISSIONS = [
    ("ledger", "add_balancecorrection"),
    ("ledger", "add_adjustment"),
    ("ledger", "assign_uncaptured"),
    ("ledger", "record_missed"),
    ("payouts", "manage_payouts"),
    ("fleet", "add_driver"),
    ("fleet", "change_driver"),
    ("fleet", "add_vehicle"),
    ("fleet", "change_vehicle"),
    ("fleet", "change_fleetsettings"),
    ("mpesa", "replay_callbacks"),
    ("ledger", "close_days"),
    ("backoffice", "add_apitoken"),
    ("ledger", "manage_deposits"),
    ("sms", "send_sms"),
    ("portal", "manage_driver_accounts"),
    ("portal", "change_problemreport"),
]


def define_roles(
    group_model: Any,
    permission_model: Any,
    money: list[tuple[str, str]] | None = None,
) -> None:
    """Create or refresh the two groups. Takes the models so a migration can pass its own, and
    the money permissions so an early migration can pass the ones that existed then."""
    views = permission_model.objects.filter(
        content_type__app_label__in=OUR_APPS, codename__startswith="view_"
    )
    accountants, _ = group_model.objects.get_or_create(name=ACCOUNTANTS)
    accountants.permissions.set(views)
    managers, _ = group_model.objects.get_or_create(name=FLEET_MANAGERS)
    wanted = MONEY_PERMISSIONS if money is None else money
    found = {
        (p.content_type.app_label, p.codename): p
        for p in permission_model.objects.filter(
            content_type__app_label__in={app for app, _ in wanted},
            codename__in={codename for _, codename in wanted},
        ).select_related("content_type")
    }
    # A permission of an app migrated after the calling migration does not exist yet: that
    # app's own roles migration (portal, sms) runs this again once it does.
    later_apps = {"portal", "sms"}
    missing = [key for key in wanted if key not in found and key[0] not in later_apps]
    if missing:
        raise permission_model.DoesNotExist(f"permissions missing: {missing}")
    money = [found[key] for key in wanted if key in found]
    managers.permissions.set([*views, *money])


def roles_ensure() -> None:
    from django.contrib.auth.models import Group, Permission

    define_roles(Group, Permission)


def require(user: AbstractUser | AnonymousUser | None, permission: str, *more: str) -> str:
    """The acting user's name if they hold `permission` (and every one of `more`), else
    NotAllowed."""
    if user is None or not user.is_authenticated or not user.is_active:
        raise NotAllowed("sign in first")
    missing = [p for p in (permission, *more) if not user.has_perm(p)]
    if missing:
        raise NotAllowed(f"{user.get_username()} may not do this (needs {', '.join(missing)})")
    return str(user.get_username())


def operator(username: str, permission: str, *more: str) -> str:
    """For the CLI: the named user must exist and hold the permission(s)."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotAllowed(f"no user {username!r}; pass --user with an operator's username")
    return require(user, permission, *more)
