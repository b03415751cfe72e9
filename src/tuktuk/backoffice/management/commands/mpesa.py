"""`tuktuk mpesa register-urls [--short-code S] [--response-type Completed|Cancelled] --user U`
and `tuktuk mpesa check [--wait SECONDS] [--json]`: M-Pesa's set-up for TukTuk Ledger.

register-urls tells Daraja's C2B RegisterURL where the shortcode's validation and confirmation
requests go (our URLs under TUKTUK_PUBLIC_URL, with the callback token); it decides where M-Pesa
reports every payment, so it takes a fleet manager. check looks at everything M-Pesa needs from
us (credentials, callback URLs, the B2C initiator) and prints one line each, exit 1 when one is
wrong; it changes nothing here (M-Pesa's answer to its Account Balance query is stored like
every callback).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import MPESA_SETUP
from tuktuk.core import jsonutil
from tuktuk.mpesa import daraja
from tuktuk.mpesa.registration import (
    RESPONSE_TYPES,
    c2b_urls_register,
    mpesa_check,
    shown,
)


class Command(OperatorCommand):
    help = "Register our C2B URLs with Daraja, or check the M-Pesa set-up."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        register = sub.add_parser(
            "register-urls", help="register our validation and confirmation URLs (C2B)"
        )
        register.add_argument("--short-code", default="", help="default: TUKTUK_MPESA_SHORTCODE")
        register.add_argument(
            "--response-type",
            choices=RESPONSE_TYPES,
            default="Completed",
            help="what M-Pesa does when our validation URL does not answer (default Completed)",
        )
        self.add_user_argument(register)
        check = sub.add_parser("check", help="credentials, callback URLs, B2C initiator")
        check.add_argument(
            "--wait",
            type=float,
            default=30.0,
            help="seconds to wait for M-Pesa's answer to the initiator check (0: do not wait)",
        )
        check.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "register-urls":
            self._register(options)
        else:
            self._check(options)

    def _register(self, options: dict[str, Any]) -> None:
        self.acting(options, MPESA_SETUP)
        try:
            client = daraja.DarajaClient()
        except daraja.DarajaNotConfigured as exc:
            raise CommandError(f"Daraja is not configured: {exc}") from exc
        try:
            done = c2b_urls_register(
                client=client,
                short_code=options["short_code"],
                response_type=options["response_type"],
            )
        except daraja.DarajaCallFailed as exc:
            raise CommandError(f"registration failed: {exc}") from exc
        finally:
            client.close()
        self.stdout.write(
            f"Shortcode {done.short_code} registered with {settings.MPESA_BASE_URL} "
            f"(ResponseType {done.response_type}): confirmation {shown(done.confirmation_url)}, "
            f"validation {shown(done.validation_url)}: {done.description}".rstrip(": ")
        )

    def _check(self, options: dict[str, Any]) -> None:
        if options["wait"] < 0:
            raise CommandError("--wait must be 0 or more seconds")
        lines = mpesa_check(wait_seconds=options["wait"])
        if options["json"]:
            self.stdout.write(jsonutil.dumps([line.as_dict() for line in lines]))
        else:
            for line in lines:
                self.stdout.write(str(line))
        problems = sum(1 for line in lines if not line.ok)
        if problems:
            self.stderr.write(f"{problems} problem(s) in the M-Pesa set-up")
            raise SystemExit(1)
