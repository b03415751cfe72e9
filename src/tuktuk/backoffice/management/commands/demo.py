"""`tuktuk demo`: a demo fleet (7 tuktuks and drivers) and an admin user; safe to run again."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import DEMO
from tuktuk.fleet.demo import ADMIN_USERNAME, DEMO_FLEET, demo_fleet_create


class Command(OperatorCommand):
    help = (
        "Create the demo fleet and the 'admin' superuser. The password comes from "
        "TUKTUK_DEMO_ADMIN_PASSWORD, else it is generated once into the data directory. "
        "On a database with other users than the demo's admin it needs --user of a superuser."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        self.add_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        # A fresh install has nobody to ask. Anywhere else the demo would add drivers to a real
        # fleet and a superuser with a password in the data dir: only a superuser may.
        if get_user_model()._default_manager.exclude(username=ADMIN_USERNAME).exists():
            self.acting(options, *DEMO)
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
