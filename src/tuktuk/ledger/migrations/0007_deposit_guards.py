"""The deposit book holds even for SQL written around the ORM: deposit entries are append-only,
and an entry whose seq or balance_after does not follow from the driver's previous entry is
refused, so the last balance_after is always the sum of the amounts (never below zero: CHECK)."""

from django.db import migrations

from tuktuk.ledger.append_only import append_only_operations, deposit_chain_operations


class Migration(migrations.Migration):
    dependencies = [("ledger", "0006_deposits")]

    operations = [
        *append_only_operations(
            {"ledger_depositentry": "deposit entries are append-only; record a new movement"}
        ),
        *deposit_chain_operations(
            {
                "ledger_depositentry": "deposit entry does not follow the previous balance "
                "(balance_after must be the previous balance plus the amount)"
            }
        ),
    ]
