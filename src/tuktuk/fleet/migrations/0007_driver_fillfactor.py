"""PostgreSQL only: leave room in the driver table's pages, so that the updates of a driver's
balance (every fare, every day close) are HOT updates: the new row version goes on the same page
and none of the table's six indexes gets a new entry, since no indexed column changes. With full
pages every update wrote to all six indexes: 50 ms per thousand drivers in the day close."""

from django.db import migrations

from tuktuk.core.db import on_postgresql

FILLFACTOR = "ALTER TABLE fleet_driver SET (fillfactor = 50)"
RESET = "ALTER TABLE fleet_driver RESET (fillfactor)"


class Migration(migrations.Migration):
    dependencies = [("fleet", "0006_sms_settings_and_opt_out")]

    operations = [migrations.RunPython(on_postgresql(FILLFACTOR), on_postgresql(RESET))]
