"""Ledger entries, closed days and balance corrections are append-only even for SQL written
around the ORM: UPDATE and DELETE are refused by database triggers (invariant 6)."""

from django.db import migrations

from tuktuk.ledger.append_only import append_only_operations


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = append_only_operations(
        {
            "ledger_ledgerentry": "ledger entries are append-only; post a correction instead",
            "ledger_dayclose": "ledger_dayclose rows are append-only",
            "ledger_balancecorrection": "ledger_balancecorrection rows are append-only",
        }
    )
