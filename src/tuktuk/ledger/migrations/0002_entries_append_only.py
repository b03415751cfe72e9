"""Ledger entries are append-only even for SQL written around the ORM: UPDATE is refused."""

from django.db import migrations

from tuktuk.ledger.append_only import append_only_operations


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = append_only_operations(
        {"ledger_ledgerentry": "ledger entries are append-only; post a correction instead"}
    )
