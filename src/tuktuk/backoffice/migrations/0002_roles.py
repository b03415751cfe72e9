"""Operator roles: fleet managers move money; accountants only read."""

from django.db import migrations

from tuktuk.backoffice.migrations._roles_0002 import MONEY_0002, permissions_create
from tuktuk.backoffice.roles import ACCOUNTANTS, FLEET_MANAGERS, define_roles


def create_roles(apps, schema_editor):
    permissions_create(apps)
    # The money permissions as they were then: later ones come with their own migrations.
    define_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), MONEY_0002)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[FLEET_MANAGERS, ACCOUNTANTS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("core", "0001_initial"),
        ("fleet", "0001_initial"),
        ("ledger", "0002_append_only"),
        ("payouts", "0001_initial"),
        ("mpesa", "0001_initial"),
        ("backoffice", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
