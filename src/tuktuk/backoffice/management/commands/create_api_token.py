"""`tuktuk create-api-token USERNAME [--name LABEL]`: a bearer token for the JSON API.

The token goes to stdout alone (`TOKEN=$(tuktuk create-api-token alice)` works) and is shown
only this once: only its hash is stored. The notice goes to stderr.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tuktuk.backoffice.api_auth import api_token_create


class Command(BaseCommand):
    help = "Create a bearer token for the JSON API and print it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the Django user the token acts as")
        parser.add_argument("--name", default="", help="a label, e.g. what the token is for")

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        username = options["username"]
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist as exc:
            raise CommandError(
                f"no user {username!r}; create one first (tuktuk createsuperuser)"
            ) from exc
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive; its tokens would not work")
        try:
            token, raw = api_token_create(user=user, name=options["name"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(raw)
        self.stderr.write(
            f"API token {token.prefix}… created for {username}. It is shown only this once; "
            "store it now. Use it as: Authorization: Bearer <token>",
            style_func=self.style.WARNING,
        )
