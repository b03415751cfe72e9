"""`tuktuk demo`: a demo fleet (7 tuktuks and drivers) and an admin user; safe to run again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from tuktuk.fleet.demo import DEMO_FLEET, demo_fleet_create


class Command(BaseCommand):
    help = (
        "Create the demo fleet and the 'admin' superuser. The password comes from "
        "TUKTUK_DEMO_ADMIN_PASSWORD, else it is generated once into the data directory."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo_fleet_create()
        self.stdout.write(
            f"Demo fleet: {len(DEMO_FLEET)} vehicles ({len(result.vehicles_created)} created), "
            f"{len(DEMO_FLEET)} drivers ({len(result.drivers_created)} created)."
        )
        for note in result.notes:
            self.stdout.write(self.style.WARNING(note))
        self.stdout.write(f"Admin username: {result.admin_username}")
        if result.admin_password is not None:
            self.stdout.write(f"Admin password: {result.admin_password}")
            self.stdout.write(f"(password from {result.password_source})")
