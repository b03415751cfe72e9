"""Shared by the roles data migrations (a module, not a migration: its name starts with _)."""

from django.contrib.auth.management import create_permissions

# The money permissions of 0002_roles, as they were then: later ones came with 0003.
MONEY_0002 = [
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
]


def permissions_create(apps):
    # Permissions are normally created after migrations; the roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

# And as they were at 0003 (its own data migration must not ask for later permissions).
MONEY_0003 = [
    *MONEY_0002,
    ("mpesa", "replay_callbacks"),
    ("ledger", "close_days"),
    ("backoffice", "add_apitoken"),
]
