"""Fleet managers may text drivers, manage drivers' portal logins and resolve their problem
reports; Accountants read the SMS log and the reports; drivers' own logins get a group with no
permission at all (issue 14)."""

from django.db import migrations

from tuktuk.backoffice.migrations import _roles_0002
from tuktuk.backoffice.roles import DRIVERS, define_roles


def refresh_roles(apps, schema_editor):
    _roles_0002.permissions_create(apps)
    define_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))
    apps.get_model("auth", "Group").objects.get_or_create(name=DRIVERS)


def previous_roles(apps, schema_editor):
    pass  # define_roles of the backoffice migrations puts the roles back as they were


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
        ("sms", "0001_initial"),
        ("backoffice", "0004_roles_deposits"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(refresh_roles, previous_roles)]
