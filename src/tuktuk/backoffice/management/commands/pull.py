"""`tuktuk pull register [--nominated-number N] [--callback-url URL]` (once per shortcode) and
`tuktuk pull run [--since T] [--until T] [--json]`: M-Pesa's Pull Transactions list compared
with ours, the missed payments posted (what the worker does every hour)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import RECORD_MISSED
from tuktuk.core import jsonutil
from tuktuk.core.dates import moment_parse
from tuktuk.core.errors import InvalidInput
from tuktuk.mpesa import daraja
from tuktuk.mpesa.pull import pull_reconcile, pull_window, pull_window_check


def default_callback_url() -> str:
    # Daraja documents no body for this callback. Pointing it at our confirmation URL means
    # whatever it sends is stored raw in the inbox (and posted, if it is a confirmation).
    return f"{settings.PUBLIC_URL}/c2b/{settings.CALLBACK_TOKEN}/confirmation"


class Command(OperatorCommand):
    help = "Register for, or run, the Pull Transactions recovery of missed C2B payments."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        register = sub.add_parser("register", help="register our shortcode (once)")
        register.add_argument(
            "--nominated-number",
            default=settings.MPESA_PULL_NOMINATED_NUMBER,
            help="the business's Safaricom number (default: $TUKTUK_MPESA_PULL_NOMINATED_NUMBER)",
        )
        register.add_argument("--callback-url", default="", help="default: our confirmation URL")
        self.add_user_argument(register)
        run = sub.add_parser("run", help="compare a window (default: the worker's next one)")
        run.add_argument("--since", help="YYYY-MM-DD HH:MM, local time; at most 48 hours ago")
        run.add_argument("--until", help="YYYY-MM-DD HH:MM, local time (default: now)")
        run.add_argument("--json", action="store_true")
        self.add_user_argument(run)

    def handle(self, *args: Any, **options: Any) -> None:
        actor = self.acting(options, RECORD_MISSED)
        try:
            client = daraja.DarajaClient()
        except daraja.DarajaNotConfigured as exc:
            raise CommandError(f"Daraja is not configured: {exc}") from exc
        try:
            if options["action"] == "register":
                self._register(client, options)
            else:
                self._run(client, options, actor)
        finally:
            client.close()

    def _register(self, client: daraja.DarajaClient, options: dict[str, Any]) -> None:
        number = options["nominated_number"].strip()
        if not number:
            raise InvalidInput(
                "--nominated-number is required (or set TUKTUK_MPESA_PULL_NOMINATED_NUMBER)"
            )
        url = options["callback_url"].strip() or default_callback_url()
        try:
            answer = client.pull_register(nominated_number=number, callback_url=url)
        except daraja.PullFailed as exc:
            raise CommandError(f"registration failed: {exc}") from exc
        shown = url.replace(settings.CALLBACK_TOKEN, "<token>")
        self.stdout.write(
            f"Shortcode {settings.MPESA_SHORTCODE} registered for Pull Transactions "
            f"(callback {shown}): {answer.get('ResponseDescription', '')}".strip()
        )

    def _run(self, client: daraja.DarajaClient, options: dict[str, Any], actor: str) -> None:
        now = timezone.now()
        until = moment_parse(options["until"], name="--until") if options["until"] else now
        if options["since"]:
            since = moment_parse(options["since"], name="--since")
        else:
            since, _ = pull_window(now=until)
        pull_window_check(since=since, until=until, now=now)
        result = pull_reconcile(source=client, since=since, until=until, actor=actor)
        if options["json"]:
            self.stdout.write(jsonutil.dumps(result.as_dict()))
        else:
            self.stdout.write(
                f"{timezone.localtime(since):%Y-%m-%d %H:%M} to "
                f"{timezone.localtime(until):%Y-%m-%d %H:%M}: {result.listed} listed, "
                f"{result.known} known, {len(result.recovered)} recovered"
                + (f" ({', '.join(result.recovered)})" if result.recovered else "")
            )
            for label, why in result.skipped.items():
                self.stdout.write(f"skipped {label}: {why}")
            for trans_id, error in result.failed.items():
                self.stdout.write(f"failed {trans_id}: {error}")
        if result.error:
            raise CommandError(f"the Pull Transactions query failed: {result.error}")
        if result.failed:
            raise CommandError(f"{len(result.failed)} payment(s) could not be posted")
