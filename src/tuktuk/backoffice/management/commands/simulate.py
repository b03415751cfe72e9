"""`tuktuk simulate`: fire Daraja-shaped C2B confirmations at a running server, concurrently."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tuktuk.fleet.models import Vehicle
from tuktuk.mpesa.simulator import c2b_load


def vehicle_accounts() -> list[str]:
    """The paybill accounts passengers could pay to: active vehicles with an active driver."""
    return list(
        Vehicle.objects.filter(is_active=True, driver__isnull=False, driver__is_active=True)
        .order_by("mpesa_account")
        .values_list("mpesa_account", flat=True)
    )


class Command(BaseCommand):
    help = (
        "Fire N Daraja-shaped C2B confirmations at /c2b/<token>/confirmation, C at a time, "
        "with a share re-sent as duplicates; print the answers, the rate and the latency."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--payments", type=int, default=100, help="distinct confirmations")
        parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="our server")
        parser.add_argument(
            "--duplicates", type=float, default=0.0, help="fraction re-sent, e.g. 0.1"
        )
        parser.add_argument("--delay-ms", type=float, default=0.0, help="between sends")
        parser.add_argument(
            "--cents",
            type=float,
            default=0.0,
            help="fraction of fares with cents (M-Pesa C2B amounts are whole shillings)",
        )
        parser.add_argument(
            "--accounts", default="", help="A,B,...; default: the vehicles in the database"
        )
        parser.add_argument("--seed", type=int, default=None, help="repeat a run exactly")
        parser.add_argument(
            "--token", default=None, help="callback token; default: the settings' token"
        )
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
        parser.add_argument(
            "--daraja-url",
            default="",
            help="a Daraja simulator (tuktuk daraja-sim) to record the payments at, so its Pull "
            "Transactions query lists them",
        )
        parser.add_argument(
            "--no-callback",
            action="store_true",
            help="record the payments at --daraja-url only: no confirmation reaches our server "
            "(the webhook missed them; the pull recovery finds them)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._check(options)
        accounts = self._accounts(options["accounts"])
        token = options["token"] or settings.CALLBACK_TOKEN
        # No seed: fresh receipts on every run. A seed repeats the same TransIDs, which a
        # server that saw them before answers as duplicates.
        rng = random.Random(options["seed"])  # noqa: S311 - load data, not secrets
        deliveries = c2b_load.plan_deliveries(
            payments=options["payments"],
            duplicates=options["duplicates"],
            accounts=accounts,
            rng=rng,
            when=dt.datetime.now(dt.UTC),
            cents=options["cents"],
        )
        if options["daraja_url"]:
            try:
                recorded = c2b_load.record_at_simulator(
                    options["daraja_url"], deliveries, timeout=options["timeout"]
                )
            except httpx.HTTPError as exc:
                raise CommandError(f"the simulator at --daraja-url refused: {exc}") from exc
            self.stdout.write(f"Recorded {recorded} payment(s) at {options['daraja_url']}")
        if options["no_callback"]:
            self.stdout.write("No confirmation sent (--no-callback)")
            return
        url = c2b_load.confirmation_url(options["url"], token)
        shown = c2b_load.confirmation_url(options["url"], "<token>")
        self.stdout.write(
            f"Firing {len(deliveries)} confirmations at {shown}, {options['concurrency']} at a "
            f"time, to {len(accounts)} account(s)"
        )
        answers, elapsed = c2b_load.fire(
            url,
            deliveries,
            concurrency=options["concurrency"],
            delay_ms=options["delay_ms"],
            timeout=options["timeout"],
        )
        summary = c2b_load.summarise(answers, elapsed)
        for line in c2b_load.report_lines(summary):
            self.stdout.write(line)
        if summary.failures:
            raise CommandError(
                f"{summary.failures} of {summary.sent} answers were not HTTP 200 with ResultCode 0",
                returncode=1,
            )

    @staticmethod
    def _check(options: dict[str, Any]) -> None:
        if options["payments"] < 1:
            raise CommandError("--payments must be at least 1")
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1")
        for name in ("duplicates", "cents"):
            if not 0.0 <= options[name] <= 1.0:
                raise CommandError(f"--{name} is a fraction between 0 and 1")
        if options["no_callback"] and not options["daraja_url"]:
            raise CommandError("--no-callback needs --daraja-url (where the payments are kept)")
        if options["delay_ms"] < 0 or options["timeout"] <= 0:
            raise CommandError("--delay-ms must not be negative and --timeout must be positive")

    @staticmethod
    def _accounts(raw: str) -> list[str]:
        if raw.strip():
            accounts = [account.strip() for account in raw.split(",") if account.strip()]
        else:
            accounts = vehicle_accounts()
            if not accounts:
                raise CommandError(
                    "No active vehicle with an assigned driver in the database. Add some "
                    "(tuktuk import-fleet, or tuktuk demo) or pass --accounts A,B,..."
                )
        if not accounts:
            raise CommandError("--accounts lists no account")
        return accounts
