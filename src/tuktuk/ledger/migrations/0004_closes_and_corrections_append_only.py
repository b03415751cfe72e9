"""Closed days and balance corrections are append-only too (invariant 6)."""

from django.db import migrations

from tuktuk.ledger.append_only import append_only_operations


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_operator_money_tools")]

    operations = append_only_operations(
        {
            "ledger_dayclose": "ledger_dayclose rows are append-only",
            "ledger_balancecorrection": "ledger_balancecorrection rows are append-only",
        }
    )
