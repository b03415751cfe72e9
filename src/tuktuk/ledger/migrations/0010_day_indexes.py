"""Indexes that start with the business day, for reads of one day across all drivers
(reconciliation, issue 15): with only (driver, business_day), "every driver's entries of its
open day" made the database read the whole ledger, every day ever posted, to keep one day.

On PostgreSQL each index also carries the columns reconciliation reads (INCLUDE), so it can
answer from the index alone where the table's visibility map allows (autovacuum sets it for
pages that no longer change, as those of past days); Django leaves INCLUDE out on SQLite and
MariaDB.
"""

from django.db import migrations, models

ENTRY_DAY = models.Index(
    fields=["business_day", "driver"],
    include=["amount", "kind", "transaction"],
    name="ledger_entry_day_driver_idx",
)
TRANSACTION_DAY = models.Index(
    fields=["business_day", "driver"],
    include=["status", "transaction_type", "target_contribution", "redeliveries", "id"],
    name="ledger_tx_day_driver_idx",
)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0009_transaction_status_imported")]

    operations = [
        migrations.AddIndex(model_name="ledgerentry", index=ENTRY_DAY),
        migrations.AddIndex(model_name="transaction", index=TRANSACTION_DAY),
    ]
