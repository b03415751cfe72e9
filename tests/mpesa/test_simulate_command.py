"""`tuktuk simulate` against our real server (gunicorn) and the real test database."""

from __future__ import annotations

import datetime as dt
import io
import random
import re
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Sum

from tests.support.factories import make_driver
from tests.support.invariants import assert_invariants
from tests.support.live_server import CALLBACK_TOKEN, LiveServer
from tuktuk.fleet.models import Vehicle
from tuktuk.ledger.models import Transaction
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.mpesa.simulator import c2b_load


def planned(*, payments: int, duplicates: float, accounts: list[str], seed: int) -> list[str]:
    """The TransIDs, in order, that the command sends for this seed."""
    deliveries = c2b_load.plan_deliveries(
        payments=payments,
        duplicates=duplicates,
        accounts=accounts,
        rng=random.Random(seed),
        # The TransIDs depend on the seed only; the time just fills the payloads' TransTime.
        when=dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC),
    )
    return [delivery.trans_id for delivery in deliveries]


def confirmation_states() -> Counter[str]:
    return Counter(
        Callback.objects.filter(kind=CallbackKind.C2B_CONFIRMATION).values_list("state", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_simulate_posts_every_payment_once_and_the_duplicates_as_duplicates(
    live_server_proc: LiveServer,
) -> None:
    drivers = [make_driver(1), make_driver(2)]
    accounts = sorted(d.vehicle.mpesa_account for d in drivers)  # type: ignore[union-attr]
    out = io.StringIO()
    call_command(
        "simulate",
        "--payments",
        "40",
        "--concurrency",
        "8",
        "--url",
        live_server_proc.url,
        "--duplicates",
        "0.1",
        "--token",
        live_server_proc.token,
        "--seed",
        "2026",
        stdout=out,
    )
    sent = planned(payments=40, duplicates=0.1, accounts=accounts, seed=2026)
    assert len(sent) == 44 and len(set(sent)) == 40
    assert Transaction.objects.count() == 40
    assert confirmation_states() == {CallbackState.PROCESSED: 40, CallbackState.DUPLICATE: 4}
    # Every payment found its vehicle's driver.
    assert not Transaction.objects.filter(driver__isnull=True).exists()
    assert set(Transaction.objects.values_list("vehicle__mpesa_account", flat=True)) == set(
        accounts
    )
    amounts = Transaction.objects.values_list("amount", flat=True)
    assert all(Decimal(50) <= amount <= Decimal(500) for amount in amounts)
    assert Transaction.objects.aggregate(s=Sum("amount"))["s"] > 0
    assert_invariants(sent_trans_ids=sent)

    report = out.getvalue()
    assert "sent 44 (unique 40, duplicates 4)" in report
    assert "HTTP status: 200: 44" in report
    assert "ResultCode: 0: 44" in report
    assert re.search(r"latency p50 [\d.]+ ms, p99 [\d.]+ ms", report)
    assert re.search(r"[\d.]+ per second", report)
    assert CALLBACK_TOKEN not in report  # the secret path is not printed


@pytest.mark.django_db(transaction=True)
def test_simulate_uses_the_settings_token_by_default(
    live_server_proc: LiveServer, settings: Any
) -> None:
    settings.CALLBACK_TOKEN = live_server_proc.token
    make_driver(3)
    call_command(
        "simulate",
        "--payments",
        "6",
        "--concurrency",
        "3",
        "--url",
        live_server_proc.url,
        "--delay-ms",
        "5",
        stdout=io.StringIO(),
    )
    assert Transaction.objects.count() == 6
    assert confirmation_states() == {CallbackState.PROCESSED: 6}
    assert_invariants()


@pytest.mark.django_db(transaction=True)
def test_simulate_fares_with_cents(live_server_proc: LiveServer) -> None:
    # Found with this command: SQLite evaluated the CHECK constraint
    # transaction_payment_split_adds_up in binary floating point, so 50.01 = 30 + 20.01 failed
    # there; the constraint now compares within half a cent.
    make_driver(4)
    call_command(
        "simulate",
        *("--payments", "20", "--concurrency", "1", "--cents", "1", "--seed", "4"),
        *("--url", live_server_proc.url, "--token", live_server_proc.token),
        stdout=io.StringIO(),
    )
    assert confirmation_states() == {CallbackState.PROCESSED: 20}
    assert Transaction.objects.count() == 20
    assert_invariants()


@pytest.mark.django_db(transaction=True)
def test_simulate_fails_with_exit_code_1_when_answers_are_not_accepted(
    live_server_proc: LiveServer,
) -> None:
    out = io.StringIO()
    with pytest.raises(CommandError, match="4 of 4 answers were not HTTP 200") as raised:
        call_command(
            "simulate",
            "--payments",
            "4",
            "--url",
            live_server_proc.url,
            "--token",
            "wrong-token",
            "--accounts",
            "TUK001",
            stdout=out,
        )
    assert raised.value.returncode == 1
    assert "HTTP status: 404: 4" in out.getvalue()
    assert Transaction.objects.count() == 0


@pytest.mark.django_db
def test_simulate_needs_accounts() -> None:
    make_driver(1)
    Vehicle.objects.update(is_active=False)
    with pytest.raises(CommandError, match="No active vehicle with an assigned driver"):
        call_command("simulate", "--payments", "1", stdout=io.StringIO())


@pytest.mark.parametrize(
    "args",
    [
        ["--payments", "0"],
        ["--concurrency", "0"],
        ["--duplicates", "1.5"],
        ["--delay-ms", "-1"],
        ["--cents", "-0.1"],
        ["--accounts", " , "],
    ],
)
def test_simulate_refuses_bad_options(args: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("simulate", "--accounts", "TUK001", *args, stdout=io.StringIO())


# The plan itself, without a server.


def test_plan_has_unique_receipts_realistic_fares_and_overlapping_duplicates() -> None:
    rng = random.Random(5)
    when = dt.datetime(2026, 11, 21, 7, 30, tzinfo=dt.UTC)
    deliveries = c2b_load.plan_deliveries(
        payments=400, duplicates=0.1, accounts=["TUK001", "TUK002"], rng=rng, when=when
    )
    originals = [d for d in deliveries if not d.duplicate]
    copies = [d for d in deliveries if d.duplicate]
    assert len(originals) == 400 and len(copies) == 40
    assert len({d.trans_id for d in originals}) == 400
    assert all(re.fullmatch(r"SIM[A-Z0-9]{7}", d.trans_id) for d in originals)
    assert {d.trans_id for d in copies} <= {d.trans_id for d in originals}
    position = {d.trans_id: i for i, d in enumerate(deliveries) if not d.duplicate}
    gaps = [i - position[d.trans_id] for i, d in enumerate(deliveries) if d.duplicate]
    assert all(gap >= 1 for gap in gaps)  # a copy always comes after its original
    assert sum(gap == 1 for gap in gaps) >= 20  # half right behind it, in flight together

    amounts = [d.payload["TransAmount"] for d in originals]
    assert all(re.fullmatch(r"\d+\.00", amount) for amount in amounts)  # whole, as Daraja writes
    assert all(Decimal(50) <= Decimal(amount) <= Decimal(500) for amount in amounts)
    assert sum(Decimal(amount) % 10 == 0 for amount in amounts) > len(amounts) / 2
    payload = originals[0].payload
    assert payload["TransTime"] == "20261121103000"  # Nairobi time
    assert payload["BillRefNumber"] in {"TUK001", "TUK002"}
    assert re.fullmatch(r"2547\d{8}", payload["MSISDN"])


def test_plan_with_a_share_of_fares_with_cents() -> None:
    rng = random.Random(6)
    when = dt.datetime(2026, 11, 21, 7, 30, tzinfo=dt.UTC)
    deliveries = c2b_load.plan_deliveries(
        payments=400, duplicates=0, accounts=["TUK001"], rng=rng, when=when, cents=0.2
    )
    with_cents = [d for d in deliveries if not d.payload["TransAmount"].endswith(".00")]
    assert 40 <= len(with_cents) <= 120
    assert all(re.fullmatch(r"\d{2,3}\.\d\d", d.payload["TransAmount"]) for d in with_cents)


def test_percentiles_and_summary() -> None:
    answers = [
        c2b_load.Answer(f"T{n}", n >= 98, 200, "0", latency=(n + 1) / 1000) for n in range(100)
    ]
    answers.append(c2b_load.Answer("T0", True, None, None, latency=0.5, error="ReadTimeout"))
    summary = c2b_load.summarise(answers, elapsed=2.0)
    assert (summary.sent, summary.unique, summary.duplicates) == (101, 100, 3)
    assert summary.failures == 1
    assert summary.statuses == {"200": 100, "no answer (ReadTimeout)": 1}
    assert summary.result_codes == {"0": 100, "None": 1}
    assert summary.p50_ms == pytest.approx(51.0)
    assert summary.p99_ms == pytest.approx(100.0)
    assert summary.rate == pytest.approx(50.5)
