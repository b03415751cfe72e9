"""Every driver who holds a vehicle gets the assignment that says so, with no start: they have
held it since before history was kept, so fares keep crediting them at any M-Pesa time."""

from django.db import migrations


def assignments_from_vehicles(apps, schema_editor):
    Driver = apps.get_model("fleet", "Driver")
    Assignment = apps.get_model("fleet", "Assignment")
    Assignment.objects.bulk_create(
        Assignment(vehicle_id=vehicle_id, driver_id=pk)
        for pk, vehicle_id in Driver.objects.filter(vehicle__isnull=False).values_list(
            "pk", "vehicle_id"
        )
    )


class Migration(migrations.Migration):
    dependencies = [("fleet", "0004_assignments_status_roster")]

    operations = [migrations.RunPython(assignments_from_vehicles, migrations.RunPython.noop)]
