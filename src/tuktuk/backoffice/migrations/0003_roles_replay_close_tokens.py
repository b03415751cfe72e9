"""Fleet managers may also replay stored callbacks, run the day close and create API tokens
(each was open to anyone before: issue 9). Accountants still only read."""

from django.db import migrations

from tuktuk.backoffice.migrations import _roles_0002
from tuktuk.backoffice.roles import define_roles


def refresh_roles(apps, schema_editor):
    _roles_0002.permissions_create(apps)
    define_roles(
        apps.get_model("auth", "Group"),
        apps.get_model("auth", "Permission"),
        _roles_0002.MONEY_0003,
    )


def previous_roles(apps, schema_editor):
    define_roles(
        apps.get_model("auth", "Group"),
        apps.get_model("auth", "Permission"),
        _roles_0002.MONEY_0002,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0002_roles"),
        ("core", "0003_roles"),
        ("ledger", "0004_roles"),
        ("mpesa", "0002_roles"),
    ]

    operations = [migrations.RunPython(refresh_roles, previous_roles)]
