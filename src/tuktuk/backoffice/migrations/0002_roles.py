"""Operator roles: fleet managers move money; accountants only read."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from tuktuk.backoffice.roles import ACCOUNTANTS, FLEET_MANAGERS, define_roles


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrations; the roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    define_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


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
