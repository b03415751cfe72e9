"""`tuktuk daraja-sim`: serve the Daraja simulator (docs/daraja-simulator.md) until stopped."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tuktuk.mpesa.simulator.server import RATED_OUTCOMES, DarajaSimulator, SimConfig


class Command(BaseCommand):
    help = (
        "Serve a Daraja simulator (OAuth, B2C, Transaction Status, Pull Transactions, C2B "
        "RegisterURL, Account Balance) for demos, staging and tests."
    )
    # It touches no database, so it must start even where none is configured.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = SimConfig()
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8089, help="0: any free port")
        parser.add_argument("--consumer-key", default=defaults.consumer_key)
        parser.add_argument("--consumer-secret", default=defaults.consumer_secret)
        parser.add_argument("--token-ttl", type=int, default=defaults.token_ttl, help="seconds")
        for _, name in RATED_OUTCOMES:
            parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=0.0)
        parser.add_argument("--callback-delay-ms", type=int, default=defaults.callback_delay_ms)
        parser.add_argument("--hang-seconds", type=float, default=defaults.hang_seconds)
        parser.add_argument("--callback-retries", type=int, default=defaults.callback_retries)
        parser.add_argument("--callback-backoff-ms", type=int, default=defaults.callback_backoff_ms)
        parser.add_argument(
            "--pull-page-size", type=int, default=defaults.pull_page_size, help="rows per page"
        )
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--initiator-name",
            default=defaults.initiator_name,
            help="the B2C initiator Account Balance queries must name (default: any)",
        )
        parser.add_argument(
            "--security-credential",
            default=defaults.security_credential,
            help="the initiator's security credential (default: any)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = self._config(options)
        simulator = DarajaSimulator(config, host=options["host"], port=options["port"])
        try:
            url = simulator.start()
        except OSError as exc:
            simulator.stop()  # its callback threads and HTTP client exist already
            address = f"{options['host']}:{options['port']}"
            raise CommandError(f"cannot listen on {address}: {exc}") from exc
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"Daraja simulator listening on {url}")
        self.stdout.write(f"OAuth: {config.consumer_key} / {config.consumer_secret}")
        self.stdout.flush()
        try:
            # Waiting on the event (not sleeping) lets SIGTERM stop the simulator at once.
            while not stop.wait(3600):
                pass
        finally:
            simulator.stop()
        self.stdout.write("Daraja simulator stopped")

    @staticmethod
    def _config(options: dict[str, Any]) -> SimConfig:
        names = [name for _, name in RATED_OUTCOMES] + [
            "consumer_key",
            "consumer_secret",
            "token_ttl",
            "callback_delay_ms",
            "hang_seconds",
            "callback_retries",
            "callback_backoff_ms",
            "pull_page_size",
            "seed",
            "initiator_name",
            "security_credential",
        ]
        try:
            return SimConfig(**{name: options[name] for name in names})
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
