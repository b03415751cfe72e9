"""A closed business day can never be written to, even by SQL written around the ORM: a trigger
refuses a ledger entry on a (driver, day) that has a DayClose (invariant 8)."""

from django.db import migrations

from tuktuk.ledger.append_only import closed_day_guard_operations


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_append_only")]

    operations = closed_day_guard_operations(
        {"ledger_ledgerentry": "business day is closed for this driver; post in the open day"}
    )
