"""Fleet managers may also manage deposits (record, deduct, decide deductions and refunds) and
terminate, archive and restore drivers (issue 10). Accountants still only read."""

from django.db import migrations

from tuktuk.backoffice.migrations import _roles_0002
from tuktuk.backoffice.roles import define_roles


def refresh_roles(apps, schema_editor):
    _roles_0002.permissions_create(apps)
    define_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def previous_roles(apps, schema_editor):
    define_roles(
        apps.get_model("auth", "Group"),
        apps.get_model("auth", "Permission"),
        _roles_0002.MONEY_0003,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0003_roles_replay_close_tokens"),
        ("ledger", "0007_deposit_guards"),
        ("fleet", "0002_driver_exit_and_alias"),
    ]

    operations = [migrations.RunPython(refresh_roles, previous_roles)]
