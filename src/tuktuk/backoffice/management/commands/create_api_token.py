"""`tuktuk create-api-token USERNAME [--name LABEL] [--frappe] --user OPERATOR`: a bearer token
for the JSON API, or with --frappe an API key and secret for the legacy app's calls
(`/api/method/tuktuk_management.api.tuktuk.*`, `Authorization: token <api_key>:<api_secret>`).
The operator needs backoffice.add_apitoken (fleet managers); a token for a superuser only a
superuser may create (it acts with every permission).

The token (with --frappe: `api_key:api_secret`) goes to stdout alone
(`TOKEN=$(tuktuk create-api-token alice)` works) and is shown only this once: only its hash is
stored. The notice goes to stderr.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser

from tuktuk.backoffice.api_auth import api_token_create, frappe_api_key_create
from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import CREATE_API_TOKENS
from tuktuk.core.errors import NotAllowed


class Command(OperatorCommand):
    help = "Create a bearer token for the JSON API and print it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the Django user the token acts as")
        parser.add_argument("--name", default="", help="a label, e.g. what the token is for")
        parser.add_argument(
            "--frappe",
            action="store_true",
            help="an API key and secret for the legacy calls (/api/method/…), printed as "
            "api_key:api_secret",
        )
        self.add_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        actor = self.acting(options, CREATE_API_TOKENS)
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
        if (
            user.is_superuser
            and not user_model._default_manager.filter(username=actor, is_superuser=True).exists()
        ):
            raise NotAllowed(f"{actor} may not create a token for the superuser {username}")
        try:
            if options["frappe"]:
                token, api_key, api_secret = frappe_api_key_create(
                    user=user, name=options["name"], actor=actor
                )
                raw, what = f"{api_key}:{api_secret}", "API key and secret"
                usage = "Authorization: token <api_key>:<api_secret>"
            else:
                token, raw = api_token_create(user=user, name=options["name"], actor=actor)
                what, usage = "API token", "Authorization: Bearer <token>"
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(raw)
        self.stderr.write(
            f"{what} {token.prefix}… created for {username}. It is shown only this once; "
            f"store it now. Use it as: {usage}",
            style_func=self.style.WARNING,
        )
