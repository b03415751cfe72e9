"""Missed C2B confirmations recovered from M-Pesa's Pull Transactions list: the Daraja simulator
over HTTP (register, query, 48 hours, OffSetValue pages), our live server receiving the
confirmations that are delivered, the real database, the clock pinned."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from tests.backoffice.test_worker_alerts import body_and_subject
from tests.support.clock import NAIROBI
from tests.support.clock_at import children_now
from tests.support.factories import make_driver, pay
from tests.support.invariants import assert_invariants
from tests.support.live_server import LiveServer, free_port
from tests.support.payouts import simulator
from tuktuk.backoffice.pull import PULL_COVERED_UNTIL
from tuktuk.backoffice.schedule import schedule_mark_get
from tuktuk.backoffice.worker import WorkerState, worker_tick
from tuktuk.core.models import Event, EventTitle
from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import Transaction, TransactionSource
from tuktuk.mpesa import daraja
from tuktuk.mpesa.c2b_payload import c2b_payload
from tuktuk.mpesa.models import Callback, CallbackState
from tuktuk.mpesa.pull import (
    PullRunResult,
    RowRejected,
    pull_reconcile,
    pull_row_parse,
    pull_window,
    pull_window_check,
)
from tuktuk.mpesa.simulator import c2b_load
from tuktuk.mpesa.simulator.server import DarajaSimulator

pytestmark = pytest.mark.django_db(transaction=True)

NOMINATED = "254708374149"


@pytest.fixture
def now() -> Iterator[dt.datetime]:
    """10:00 in Nairobi on the live server's today, frozen: its day (not a fixed one), so that the
    live server, on the real clock (or --clock-at's, which has run on since the session began),
    posts into the same business day as this process."""
    today = children_now().date()
    instant = dt.datetime.combine(today, dt.time(10, 0), tzinfo=NAIROBI)
    with time_machine.travel(instant, tick=False):
        yield instant


@contextmanager
def daraja_at(sim: DarajaSimulator, **extra: Any) -> Iterator[None]:
    configured: dict[str, Any] = {
        "MPESA_CONSUMER_KEY": "sim-key",
        "MPESA_CONSUMER_SECRET": "sim-secret",
        "MPESA_SHORTCODE": "600984",
        "MPESA_INITIATOR_NAME": "testapi",
        "MPESA_SECURITY_CREDENTIAL": "sim-credential",
        "MPESA_BASE_URL": sim.url,
    }
    with override_settings(**{**configured, **extra}):
        yield


@pytest.fixture
def sim() -> Iterator[DarajaSimulator]:
    """The simulator with our shortcode registered for Pull Transactions, Daraja configured."""
    with simulator() as running, daraja_at(running):
        client = daraja.DarajaClient()
        answer = client.pull_register(
            nominated_number=NOMINATED, callback_url="http://127.0.0.1:9/c2b/x/confirmation"
        )
        assert answer["ResponseStatus"] == "1000"
        client.close()
        yield running


def payment(trans_id: str, amount: str, minutes_ago: int, account: str = "TUK001") -> dict:
    when = timezone.now() - dt.timedelta(minutes=minutes_ago)
    return {
        "trans_id": trans_id,
        "amount": amount,
        "account": account,
        "msisdn": "254711222333",
        "time": when.astimezone(NAIROBI).strftime("%Y%m%d%H%M%S"),
    }


def run(since_minutes: int = 75) -> PullRunResult:
    client = daraja.DarajaClient()
    try:
        until = timezone.now()
        since = until - dt.timedelta(minutes=since_minutes)
        return pull_reconcile(source=client, since=since, until=until, actor="test")
    finally:
        client.close()


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def balance(number: int = 1) -> Decimal:
    return Driver.objects.get(driver_id=f"DRV-{112000 + number}").current_balance


def test_missed_payment_is_recovered_once_with_source_pull_and_known_ones_left_alone(
    now: dt.datetime, sim: DarajaSimulator, live_server_proc: LiveServer
) -> None:
    make_driver(1)
    # Delivered by the webhook (a real confirmation to our live server), and one that never was.
    sim.add_c2b_payments(
        payment("SIMDELIV01", "200", 30), confirmation_url=live_server_proc.c2b_url("confirmation")
    )
    sim.add_c2b_payments(payment("SIMMISSED1", "300", 20))
    assert sim.wait_for_callbacks(30)
    assert Transaction.objects.get().trans_id == "SIMDELIV01"
    assert balance() == Decimal("100.00")

    result = run()

    assert result.error == "" and result.listed == 2 and result.known == 1
    assert result.recovered == ["SIMMISSED1"]
    recovered = Transaction.objects.get(trans_id="SIMMISSED1")
    assert recovered.source == TransactionSource.PULL
    assert recovered.amount == Decimal("300.00")
    assert recovered.payer_msisdn == "254711222333"
    assert recovered.mpesa_time == now - dt.timedelta(minutes=20)
    assert Transaction.objects.get(trans_id="SIMDELIV01").source == TransactionSource.C2B
    assert balance() == Decimal("250.00")  # 50% of 200 + 50% of 300
    (event,) = Event.objects.filter(title=EventTitle.PAYMENT_RECOVERED)
    assert event.driver == "DRV-112001" and event.data["trans_id"] == "SIMMISSED1"
    (run_event,) = Event.objects.filter(title=EventTitle.PULL_RUN)
    assert run_event.data["listed"] == 2 and run_event.data["recovered"] == ["SIMMISSED1"]
    assert at(run_event.data["since"]) == now - dt.timedelta(minutes=75)

    # Running again recovers nothing new and credits nothing.
    again = run()
    assert again.recovered == [] and again.known == 2
    assert Transaction.objects.count() == 2 and balance() == Decimal("250.00")
    assert Event.objects.filter(title=EventTitle.PAYMENT_RECOVERED).count() == 1
    assert_invariants()


def test_late_webhook_delivery_after_recovery_is_a_duplicate(
    now: dt.datetime, sim: DarajaSimulator, live_server_proc: LiveServer
) -> None:
    make_driver(1)
    sim.add_c2b_payments(payment("SIMLATE001", "400", 10))
    assert run().recovered == ["SIMLATE001"]
    body = c2b_payload(trans_id="SIMLATE001", amount="400", account="TUK001", when=now)
    answer = httpx.post(live_server_proc.c2b_url("confirmation"), json=body, timeout=30)
    assert answer.status_code == 200 and str(answer.json()["ResultCode"]) == "0"
    assert Callback.objects.get().state == CallbackState.DUPLICATE
    assert Transaction.objects.count() == 1 and balance() == Decimal("200.00")
    assert Event.objects.filter(title=EventTitle.DUPLICATE_PREVENTED).count() == 1
    assert_invariants()


def test_recovery_racing_the_late_webhook_credits_each_payment_once(
    now: dt.datetime, sim: DarajaSimulator, live_server_proc: LiveServer
) -> None:
    for n in range(1, 4):
        make_driver(n)
    missed = [payment(f"SIMRACE{i:03d}", "100", 5 + i, f"TUK{1 + i % 3:03d}") for i in range(30)]
    sim.add_c2b_payments(*missed)
    deliveries = [
        c2b_load.Delivery(
            c2b_payload(trans_id=p["trans_id"], amount=p["amount"], account=p["account"], when=now)
        )
        for p in missed
    ]
    results: list[PullRunResult] = []

    def pull() -> None:
        try:
            results.append(run())
        finally:
            connection.close()

    racer = threading.Thread(target=pull)
    racer.start()
    answers, _ = c2b_load.fire(live_server_proc.c2b_url("confirmation"), deliveries, concurrency=8)
    racer.join(60)
    assert not racer.is_alive()
    assert all(answer.ok for answer in answers)
    (result,) = results
    assert result.ok and result.listed == 30
    assert len(result.recovered) + len(result.raced) + result.known == 30
    assert set(result.recovered).isdisjoint(result.raced)
    assert Transaction.objects.count() == 30
    pulled = Transaction.objects.filter(source=TransactionSource.PULL)
    assert sorted(pulled.values_list("trans_id", flat=True)) == sorted(result.recovered)
    assert sum(Driver.objects.values_list("current_balance", flat=True)) == Decimal("1500.00")
    assert_invariants(sent_trans_ids=[p["trans_id"] for p in missed])


def test_a_window_of_several_pages_is_read_to_the_end(
    now: dt.datetime, sim: DarajaSimulator
) -> None:
    make_driver(1)
    sim.configure(pull_page_size=3)
    sim.add_c2b_payments(*(payment(f"SIMPAGE{i:03d}", "100", 1 + i) for i in range(8)))
    result = run()
    assert sorted(result.recovered) == [f"SIMPAGE{i:03d}" for i in range(8)]
    assert [(q["offset"], q["returned"]) for q in sim.state()["pull_queries"]] == [
        (0, 3),
        (3, 3),
        (6, 2),
        (8, 0),
    ]
    assert balance() == Decimal("400.00")
    assert_invariants()


def test_only_the_window_is_listed_and_never_beyond_48_hours(
    now: dt.datetime, sim: DarajaSimulator
) -> None:
    make_driver(1)
    sim.add_c2b_payments(payment("SIMINSIDE1", "100", 30), payment("SIMBEFORE1", "100", 120))
    assert run(since_minutes=75).recovered == ["SIMINSIDE1"]
    # The simulator, like M-Pesa, refuses a StartDate more than 48 hours back.
    client = daraja.DarajaClient()
    with pytest.raises(daraja.PullFailed, match="48 hours"):
        client.pull_transactions(since=now - dt.timedelta(hours=49), until=now)
    client.close()
    # Our windows never ask for that: the scheduled one is cut at 48 hours (less a minute).
    since, until = pull_window(now=now, covered_until=now - dt.timedelta(hours=72))
    assert (since, until) == (now - dt.timedelta(hours=48) + dt.timedelta(minutes=1), now)
    assert pull_window(now=now) == (now - dt.timedelta(minutes=75), now)
    with pytest.raises(Exception, match="48 hours"):
        pull_window_check(since=now - dt.timedelta(hours=49), until=now, now=now)


def test_a_malformed_row_is_skipped_with_an_event_and_the_rest_recovered(
    now: dt.datetime, sim: DarajaSimulator
) -> None:
    make_driver(1)
    sim.add_c2b_payments(
        payment("SIMBADAMT1", "100", 40) | {"pull_row": {"amount": "12abc"}},
        payment("SIMGOOD001", "100", 30),
    )
    result = run()
    assert result.recovered == ["SIMGOOD001"]
    assert list(result.skipped) == ["SIMBADAMT1"] and result.ok and result.needs_attention
    (event,) = Event.objects.filter(title=EventTitle.PULL_ROW_SKIPPED)
    assert "SIMBADAMT1" in event.message and "12abc" in event.message
    assert not Transaction.objects.filter(trans_id="SIMBADAMT1").exists()
    assert balance() == Decimal("50.00")


class Listed:
    """M-Pesa's answer as the client hands it over, for rows the simulator cannot shape (a JSON
    number, which the client reads as an exact Decimal; a row that is not an object)."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def pull_transactions(self, *, since: dt.datetime, until: dt.datetime) -> list[Any]:
        return self.rows


def test_rows_of_any_shape_are_skipped_with_an_event_the_log_can_keep(now: dt.datetime) -> None:
    rows = [{"transactionId": "SIMDEC0001", "amount": Decimal("10.005")}, ["a", "list"], 7]
    until = timezone.now()
    result = pull_reconcile(source=Listed(rows), since=until - dt.timedelta(hours=1), until=until)
    assert list(result.skipped) == ["SIMDEC0001", "row 1", "row 2"] and result.recovered == []
    events = Event.objects.filter(title=EventTitle.PULL_ROW_SKIPPED).order_by("id")
    assert [e.data["row"] for e in events] == [
        {"transactionId": "SIMDEC0001", "amount": "10.005"},
        "['a', 'list']",
        "7",
    ]


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ("not a row", "not an object"),
        ({"transactionId": "", "amount": "10"}, "not an M-Pesa receipt"),
        ({"transactionId": "AB CD", "amount": "10"}, "not an M-Pesa receipt"),
        ({"transactionId": "SIM1", "amount": "0"}, "amount '0'"),
        ({"transactionId": "SIM1", "amount": "-5"}, "amount '-5'"),
        ({"transactionId": "SIM1", "amount": "1.005"}, "at most 2 decimals"),
        ({"transactionId": "SIM1", "amount": "999999"}, "above the maximum"),
        ({"transactionId": "SIM1", "amount": {"v": 1}}, "not a string"),
        ({"transactionId": "SIM1", "amount": "10", "billreference": "A\x00"}, "control"),
    ],
)
def test_rows_that_cannot_be_a_payment_are_refused(row: Any, why: str) -> None:
    with pytest.raises(RowRejected, match=why):
        pull_row_parse(row)


def test_row_times_and_amounts_are_read_exactly() -> None:
    parsed = pull_row_parse(
        {
            "transactionId": "SIM1",
            "amount": Decimal("150.50"),
            "trxDate": "2026-03-10T10:13:00Z",
            "msisdn": 254711222333,
            "billreference": " tuk001 ",
        }
    )
    assert parsed.amount == Decimal("150.50") and parsed.account_reference == "tuk001"
    assert parsed.payer_msisdn == "254711222333"
    assert parsed.mpesa_time == dt.datetime(2026, 3, 10, 10, 13, tzinfo=NAIROBI)
    assert pull_row_parse({"transactionId": "S2", "amount": "5", "trxDate": "?"}).mpesa_time is None


@pytest.mark.parametrize("how", ["simulator down", "shortcode not registered"])
def test_a_failed_query_raises_an_alert_posts_nothing_and_is_caught_up_next_run(
    now: dt.datetime, smtp: Any, how: str
) -> None:
    inbox, _ = smtp
    make_driver(1)
    with simulator() as sim:
        sim.add_c2b_payments(payment("SIMCATCHUP", "100", 30))
        url = sim.url
        if how == "simulator down":
            url = f"http://127.0.0.1:{free_port()}"
        with daraja_at(sim, MPESA_BASE_URL=url, PULL_ENABLED=None):
            report = worker_tick(WorkerState())["pull"]
        assert report["error"] and report["alert_sent"] is True
        assert not Transaction.objects.exists()
        assert Event.objects.filter(title=EventTitle.PULL_FAILED, level="error").count() == 1
        # Not covered: the next run starts where this one did.
        assert schedule_mark_get(name=PULL_COVERED_UNTIL) == now - dt.timedelta(minutes=75)
        assert inbox.arrived.wait(10)
        (message,) = inbox.alerts
        subject, body = body_and_subject(message[2])
        assert subject == "⚠️ Missed Payment Recovery Needs Attention"
        assert "The query failed" in body

        # Fixed: the next run covers the failed window too (less the overlap), then moves on.
        with daraja_at(sim):
            client = daraja.DarajaClient()
            client.pull_register(nominated_number=NOMINATED, callback_url=f"{sim.url}/x")
            later = now + dt.timedelta(hours=1, minutes=1)
            with time_machine.travel(later, tick=False):
                report = worker_tick(WorkerState())["pull"]
    assert report["recovered"] == ["SIMCATCHUP"] and report["alert_sent"] is False
    assert at(report["since"]) == now - dt.timedelta(minutes=90)
    assert schedule_mark_get(name=PULL_COVERED_UNTIL) == later
    assert balance() == Decimal("50.00")


def test_scheduled_runs_are_hourly_and_continue_from_the_last_window(
    now: dt.datetime, sim: DarajaSimulator
) -> None:
    make_driver(1)
    first = worker_tick(WorkerState())["pull"]
    assert at(first["since"]) == now - dt.timedelta(minutes=75)
    assert "pull" not in worker_tick(WorkerState())  # another worker, same hour: not due
    sim.add_c2b_payments(payment("SIMHOURLY1", "100", -30))  # paid half an hour from now
    with time_machine.travel(now + dt.timedelta(hours=3), tick=False):
        # The worker was down for two runs: the window reaches back to where the last ended.
        later = worker_tick(WorkerState())["pull"]
    assert at(later["since"]) == now - dt.timedelta(minutes=15)
    assert later["recovered"] == ["SIMHOURLY1"]


def test_pull_stays_off_without_daraja_or_when_disabled(now: dt.datetime) -> None:
    assert "pull" not in worker_tick(WorkerState())
    with simulator() as sim, daraja_at(sim, PULL_ENABLED=False):
        assert "pull" not in worker_tick(WorkerState())
    assert not Event.objects.filter(title=EventTitle.PULL_RUN).exists()


def test_cli_register_and_run_by_a_fleet_manager(
    now: dt.datetime, people: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    make_driver(1)
    with simulator() as sim, daraja_at(sim):
        call_command("pull", "register", "--nominated-number", NOMINATED, "--user", "manager")
        (registration,) = sim.state()["pull_registrations"].values()
        assert registration["nominated_number"] == NOMINATED
        assert registration["callback_url"].endswith("/confirmation")
        # `tuktuk simulate --no-callback`: payments M-Pesa took, no confirmation delivered.
        call_command(
            "simulate",
            "--payments",
            "3",
            "--accounts",
            "TUK001",
            "--seed",
            "5",
            "--daraja-url",
            sim.url,
            "--no-callback",
        )
        assert len(sim.state()["c2b_payments"]) == 3
        since = (now - dt.timedelta(minutes=10)).astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M")
        call_command("pull", "run", "--since", since, "--json", "--user", "manager")
        output = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert len(output["recovered"]) == 3
        assert Transaction.objects.filter(source=TransactionSource.PULL).count() == 3
        with pytest.raises(CommandError) as refused:
            call_command("pull", "run", "--user", "accountant")
        assert refused.value.returncode == 4
        old = (now - dt.timedelta(hours=49)).astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M")
        with pytest.raises(CommandError, match="48 hours") as too_old:
            call_command("pull", "run", "--since", old, "--user", "manager")
        assert too_old.value.returncode == 2
    assert_invariants()


def test_known_means_a_transaction_or_a_stored_confirmation(
    now: dt.datetime, sim: DarajaSimulator
) -> None:
    make_driver(1)
    pay("SIMPOSTED1", "100")  # posted (any source)
    Callback.objects.create(  # stored, failed, waiting for its replay: not ours to post
        kind="c2b_confirmation",
        state=CallbackState.FAILED,
        trans_id="SIMFAILED1",
        received_at=timezone.now(),
    )
    sim.add_c2b_payments(payment("SIMPOSTED1", "100", 30), payment("SIMFAILED1", "100", 20))
    result = run()
    assert result.known == 2 and result.recovered == []
    assert Transaction.objects.count() == 1


def test_simulator_pull_contract_refuses_what_daraja_refuses(now: dt.datetime) -> None:
    with simulator() as sim:
        base = sim.url
        token = httpx.get(
            f"{base}/oauth/v1/generate",
            params={"grant_type": "client_credentials"},
            auth=("sim-key", "sim-secret"),
        ).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        query = {
            "ShortCode": "600984",
            "StartDate": "2026-03-10 09:00:00",
            "EndDate": "2026-03-10 10:00:00",
            "OffSetValue": "0",
        }
        assert httpx.post(f"{base}/pulltransactions/v1/query", json=query).status_code == 401
        bad_number = {
            "ShortCode": "600984",
            "RequestType": "Pull",
            "NominatedNumber": "12345",
            "CallBackURL": "https://example.com/x",
        }
        refused = httpx.post(
            f"{base}/pulltransactions/v1/register", json=bad_number, headers=bearer
        )
        assert refused.status_code == 400
        assert refused.json()["errorMessage"] == "Bad Request - Invalid NominatedNumber"
        bad_date = query | {"StartDate": "yesterday"}
        refused = httpx.post(f"{base}/pulltransactions/v1/query", json=bad_date, headers=bearer)
        assert refused.json()["errorMessage"] == "Bad Request - Invalid StartDate"
        twice = [{"trans_id": "SIMTWICE01", "amount": "10", "account": "A"}] * 2
        refused = httpx.post(f"{base}/sim/c2b-payments", json={"payments": twice})
        assert refused.status_code == 400 and sim.state()["c2b_payments"] == []
