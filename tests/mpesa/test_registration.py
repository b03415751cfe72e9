"""`tuktuk mpesa register-urls` and `tuktuk mpesa check` against the Daraja simulator over
HTTP, with our live server as the place M-Pesa calls back: the registered URLs really receive
the shortcode's payments, and each thing that is wrong is said in one line."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests.support.factories import make_driver
from tests.support.live_server import LiveServer
from tests.support.payouts import CREDENTIALS, simulator, wait_until
from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import Transaction
from tuktuk.mpesa import daraja
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.mpesa.simulator.server import DarajaSimulator

pytestmark = pytest.mark.django_db(transaction=True)

SHORTCODE = CREDENTIALS["TUKTUK_MPESA_SHORTCODE"]
INITIATOR = CREDENTIALS["TUKTUK_MPESA_INITIATOR_NAME"]
CREDENTIAL = CREDENTIALS["TUKTUK_MPESA_SECURITY_CREDENTIAL"]


@contextmanager
def configured(sim: DarajaSimulator, server: LiveServer, **extra: Any) -> Iterator[None]:
    values = {
        "MPESA_CONSUMER_KEY": "sim-key",
        "MPESA_CONSUMER_SECRET": "sim-secret",
        "MPESA_SHORTCODE": SHORTCODE,
        "MPESA_INITIATOR_NAME": INITIATOR,
        "MPESA_SECURITY_CREDENTIAL": CREDENTIAL,
        "MPESA_BASE_URL": sim.url,
        "PUBLIC_URL": server.url,
        "CALLBACK_TOKEN": server.token,
    }
    with override_settings(**{**values, **extra}):
        yield


@pytest.fixture
def sim() -> Iterator[DarajaSimulator]:
    with simulator(initiator_name=INITIATOR, security_credential=CREDENTIAL) as running:
        yield running


def mpesa(*argv: str) -> tuple[list[str], list[str]]:
    out, err = io.StringIO(), io.StringIO()
    call_command("mpesa", *argv, stdout=out, stderr=err)
    return out.getvalue().splitlines(), err.getvalue().splitlines()


def check(wait: str = "20") -> tuple[int, list[str]]:
    out = io.StringIO()
    try:
        call_command("mpesa", "check", "--wait", wait, stdout=out, stderr=io.StringIO())
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue().splitlines()
    return 0, out.getvalue().splitlines()


def test_register_urls_sends_our_urls_and_payments_then_reach_us(
    sim: DarajaSimulator, live_server_proc: LiveServer, people: dict[str, User]
) -> None:
    make_driver(1)
    with configured(sim, live_server_proc):
        out, _ = mpesa("register-urls", "--user", "manager")
    base, token = live_server_proc.url, live_server_proc.token
    assert out == [
        f"Shortcode {SHORTCODE} registered with {sim.url} (ResponseType Completed): confirmation "
        f"{base}/c2b/<token>/confirmation, validation {base}/c2b/<token>/validation: Success"
    ]
    assert token not in "".join(out)  # the secret is never printed
    assert sim.state()["c2b_registrations"] == {
        SHORTCODE: {
            "short_code": SHORTCODE,
            "response_type": "Completed",
            "confirmation_url": f"{base}/c2b/{token}/confirmation",
            "validation_url": f"{base}/c2b/{token}/validation",
        }
    }
    # A payment to the shortcode now reaches our confirmation URL, as M-Pesa would send it.
    sim.add_c2b_payments(
        {"trans_id": "REGURL0001", "amount": "300", "account": "TUK001"},
        confirmation_url="registered",
    )
    assert sim.wait_for_callbacks(30)
    wait_until(
        lambda: Transaction.objects.filter(trans_id="REGURL0001").exists(),
        timeout=30,
        what="the fare",
    )
    assert Driver.objects.get(driver_id="DRV-112001").current_balance == Decimal("150.00")
    (delivery,) = [c for c in sim.state()["callbacks_sent"] if c["kind"] == "c2b_confirmation"]
    assert delivery["status"] == 200

    # Registering again (another response type) replaces it, as the sandbox does.
    with configured(sim, live_server_proc):
        mpesa("register-urls", "--response-type", "Cancelled", "--user", "manager")
    assert sim.state()["c2b_registrations"][SHORTCODE]["response_type"] == "Cancelled"


def test_register_urls_refuses_what_daraja_refuses(
    sim: DarajaSimulator, live_server_proc: LiveServer, people: dict[str, User]
) -> None:
    # Daraja refuses C2B URLs with "mpesa" (and "query", "cmd", …) in them: said before asking.
    with configured(sim, live_server_proc, PUBLIC_URL="http://127.0.0.1:9/mpesa"):
        with pytest.raises(CommandError, match="contains 'mpesa', which Daraja refuses") as refused:
            mpesa("register-urls", "--user", "manager")
    assert refused.value.returncode == 2
    with configured(sim, live_server_proc, CALLBACK_TOKEN="abcSQLdef"):
        with pytest.raises(CommandError, match="set a new TUKTUK_CALLBACK_TOKEN"):
            mpesa("register-urls", "--user", "manager")
    assert sim.state()["c2b_registrations"] == {}
    # …and the simulator refuses them too, with Daraja's answer, when asked anyway.
    with configured(sim, live_server_proc):
        client = daraja.DarajaClient()
        try:
            with pytest.raises(daraja.DarajaCallFailed, match="Invalid ConfirmationURL"):
                client.c2b_register_urls(
                    short_code=SHORTCODE,
                    response_type="Completed",
                    confirmation_url="https://example.com/mpesa/confirm",
                    validation_url="https://example.com/validate",
                )
            with pytest.raises(daraja.DarajaCallFailed, match="Invalid ResponseType"):
                client.c2b_register_urls(
                    short_code=SHORTCODE,
                    response_type="Pending",
                    confirmation_url="https://example.com/confirm",
                    validation_url="https://example.com/validate",
                )
        finally:
            client.close()
        # Daraja not configured at all: one clear line.
        with override_settings(MPESA_CONSUMER_KEY=""):
            with pytest.raises(CommandError, match="Daraja is not configured"):
                mpesa("register-urls", "--user", "manager")
    assert sim.state()["c2b_registrations"] == {}


def test_check_passes_when_everything_is_right(
    sim: DarajaSimulator, live_server_proc: LiveServer
) -> None:
    with configured(sim, live_server_proc):
        status, lines = check()
    assert status == 0, lines
    assert all(line.startswith("ok  ") for line in lines), lines
    assert len(lines) == 9  # configuration, six callback URLs, OAuth, the initiator
    assert lines[-1] == (
        f"ok  B2C initiator '{INITIATOR}' of shortcode {SHORTCODE}: M-Pesa answered an Account "
        "Balance query, and the result reached us"
    )
    (query,) = sim.state()["balance_queries"]
    assert query["result_code"] == 0 and query["initiator"] == INITIATOR
    # M-Pesa's answer was stored like every callback (stored first, then found to match no
    # payout: unmatched; the check read it as soon as it was stored).
    stored = Callback.objects.get(kind=CallbackKind.STATUS_RESULT)
    assert query["originator_conversation_id"] in stored.body
    wait_until(
        lambda: Callback.objects.get(pk=stored.pk).state == CallbackState.UNMATCHED,
        timeout=30,
        what="the stored result to be processed",
    )


def test_check_says_what_is_wrong_one_line_each(
    sim: DarajaSimulator, live_server_proc: LiveServer
) -> None:
    with configured(sim, live_server_proc, MPESA_INITIATOR_NAME="someone-else"):
        status, lines = check()
    assert status == 1
    assert [line for line in lines if not line.startswith("ok")] == [
        f"PROBLEM  B2C initiator 'someone-else' of shortcode {SHORTCODE}: 2001 The initiator "
        "information is invalid."
    ]

    with configured(sim, live_server_proc, MPESA_CONSUMER_SECRET="wrong"):
        status, lines = check()
    assert status == 1
    assert [line for line in lines if not line.startswith("ok")] == [
        "PROBLEM  OAuth: Daraja refused the consumer key and secret (HTTP 400 400.008.01 Invalid "
        "Authentication passed)"
    ]

    # A token the server does not have: every callback URL says so; the initiator's result is
    # then refused by our server (404) and never arrives.
    with configured(sim, live_server_proc, CALLBACK_TOKEN="not-the-servers-token"):
        status, lines = check(wait="3")
    problems = [line for line in lines if not line.startswith("ok")]
    assert status == 1 and len(problems) == 7
    assert problems[0] == (
        f"PROBLEM  C2B validation URL {live_server_proc.url}/c2b/<token>/validation: answers "
        "404: the token is not this server's TUKTUK_CALLBACK_TOKEN, or TUKTUK_PUBLIC_URL does "
        "not lead to TukTuk Ledger"
    )
    assert "no result of the Account Balance query reached" in problems[-1]
    assert "not-the-servers-token" not in "\n".join(lines)

    with configured(sim, live_server_proc, MPESA_INITIATOR_NAME="", MPESA_SHORTCODE=""):
        status, lines = check()
    assert status == 1
    assert [line for line in lines if not line.startswith("ok")] == [
        "PROBLEM  configuration: TUKTUK_MPESA_SHORTCODE is not set",
        "PROBLEM  configuration: TUKTUK_MPESA_INITIATOR_NAME is not set",
    ]


def test_check_without_waiting_and_as_json(
    sim: DarajaSimulator, live_server_proc: LiveServer
) -> None:
    out = io.StringIO()
    with configured(sim, live_server_proc):
        call_command("mpesa", "check", "--wait", "0", "--json", stdout=out)
    import json

    lines = json.loads(out.getvalue())
    assert all(line["ok"] for line in lines)
    assert lines[-1]["detail"] == "an Account Balance query was accepted (result not awaited)"
