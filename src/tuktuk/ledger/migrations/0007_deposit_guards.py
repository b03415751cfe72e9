"""The deposit book holds even for SQL written around the ORM: deposit entries are append-only,
and an entry whose seq or balance_after does not follow from the driver's previous entry is
refused, so the last balance_after is always the sum of the amounts (never below zero: CHECK).

0006 altered ledger entries (a new kind) and closed days (paused): SQLite rebuilt both tables
and dropped their triggers, which are installed again here."""

from django.db import migrations

from tuktuk.ledger.append_only import (
    append_only_operations,
    deposit_chain_operations,
    sqlite_triggers_reinstall_operations,
)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0006_deposits")]

    operations = [
        *sqlite_triggers_reinstall_operations(
            append_only={
                "ledger_ledgerentry": "ledger entries are append-only; post a correction instead",
                "ledger_dayclose": "ledger_dayclose rows are append-only",
            },
            closed_day={
                "ledger_ledgerentry": "business day is closed for this driver; post in the open day"
            },
        ),
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
