"""Payout test rig: the Daraja simulator, our live server receiving its callbacks, and real
worker processes (`tuktuk worker`) against the test database."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.test import override_settings

from tests.support.factories import make_driver
from tests.support.live_server import REPO_ROOT, LiveServer, child_env
from tuktuk.fleet.models import FleetSettings
from tuktuk.ledger.models import Decision, DepositRefund, Transaction
from tuktuk.ledger.services import IncomingPayment, payment_post
from tuktuk.mpesa.simulator.server import DarajaSimulator, SimConfig
from tuktuk.payouts.models import Payout, PayoutState

CREDENTIALS = {
    "TUKTUK_MPESA_CONSUMER_KEY": "sim-key",
    "TUKTUK_MPESA_CONSUMER_SECRET": "sim-secret",
    "TUKTUK_MPESA_SHORTCODE": "600984",
    "TUKTUK_MPESA_INITIATOR_NAME": "testapi",
    "TUKTUK_MPESA_SECURITY_CREDENTIAL": "sim-credential",
}


def daraja_env(sim: DarajaSimulator, server: LiveServer, **extra: str) -> dict[str, str]:
    return {
        **CREDENTIALS,
        "TUKTUK_MPESA_BASE_URL": sim.url,
        "TUKTUK_PUBLIC_URL": server.url,
        "TUKTUK_CALLBACK_TOKEN": server.token,
        # The payout rigs register no shortcode for Pull Transactions (tests/mpesa/test_pull.py).
        "TUKTUK_PULL_ENABLED": "false",
        **extra,
    }


@contextmanager
def daraja_settings(sim: DarajaSimulator, server: LiveServer, **extra: Any) -> Iterator[None]:
    """The same configuration for in-process workers (payouts_work, worker_tick)."""
    with override_settings(
        MPESA_CONSUMER_KEY="sim-key",
        MPESA_CONSUMER_SECRET="sim-secret",
        MPESA_SHORTCODE="600984",
        MPESA_INITIATOR_NAME="testapi",
        MPESA_SECURITY_CREDENTIAL="sim-credential",
        MPESA_BASE_URL=sim.url,
        PUBLIC_URL=server.url,
        CALLBACK_TOKEN=server.token,
        PULL_ENABLED=False,
        **extra,
    ):
        yield


@contextmanager
def simulator(**config: Any) -> Iterator[DarajaSimulator]:
    sim = DarajaSimulator(SimConfig(seed=7, callback_backoff_ms=50, **config))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


class Workers:
    """`tuktuk worker` processes, started and killed like an operator (or a crash) would."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = child_env(TUKTUK_LOG_LEVEL="WARNING", **env)
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tuktuk", "worker", "--interval", "0.2"],
                    env=self.env,
                    cwd=REPO_ROOT,
                )
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(sig)
            process.wait(timeout=30)
        self.processes.clear()


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll the database (another process changes it; there is no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def all_payouts(state: str) -> Callable[[], bool]:
    return lambda: not Payout.objects.exclude(state=state).exists()


def assert_paid_exactly_once(sim: DarajaSimulator) -> None:
    """Every payout completed; M-Pesa accepted each OriginatorConversationID once and paid the
    right amount; per driver, paid = sum of driver shares plus approved deposit refunds."""
    state = sim.state()
    accepted = Counter(
        r["originator_conversation_id"] for r in state["b2c_requests"] if r["accepted"]
    )
    assert all(n == 1 for n in accepted.values()), accepted.most_common(3)
    payouts = {p.originator_conversation_id: p for p in Payout.objects.all()}
    paid = {oid: p for oid, p in state["payments"].items() if p["paid"]}
    assert set(paid) == set(payouts)
    for oid, payout in payouts.items():
        assert payout.state == PayoutState.COMPLETED, (oid, payout.state, payout.result_desc)
        assert Decimal(str(paid[oid]["amount"])) == payout.amount
        assert payout.receipt == paid[oid]["receipt"]
    shares = Counter(
        dict(
            Transaction.objects.values("driver")
            .annotate(s=Sum("driver_share"))
            .values_list("driver", "s")
        )
    )
    shares.update(
        dict(
            DepositRefund.objects.filter(state=Decision.APPROVED)
            .values("driver")
            .annotate(s=Sum("amount"))
            .values_list("driver", "s")
        )
    )
    completed = dict(
        Payout.objects.filter(state=PayoutState.COMPLETED)
        .values("driver")
        .annotate(s=Sum("amount"))
        .values_list("driver", "s")
    )
    assert completed == {k: v for k, v in shares.items() if v}


def make_payouts(count: int, *, drivers: int = 7, instant: bool = True) -> None:
    fleet = FleetSettings.load()
    fleet.instant_payouts = instant
    fleet.save()
    for n in range(1, drivers + 1):
        make_driver(n)
    for i in range(count):
        n = 1 + i % drivers
        payment_post(
            payment=IncomingPayment(
                trans_id=f"PAY{i:06d}",
                amount=Decimal(100 + i % 7 * 10),
                account_reference=f"TUK{n:03d}",
            )
        )


def payout_worker_kill(
    server: LiveServer,
    *,
    payouts: int,
    kills: int,
    make: Callable[[int], None] = lambda count: make_payouts(count),
) -> dict[str, int]:
    """`payouts` payouts; `kills` times a `tuktuk worker` is killed (kill -9) while inside a
    B2C call with its batch claimed, then restarted; at the end every payout is paid exactly
    once (the restarted worker finds the claimed ones `sending`, makes them `unknown` and asks
    M-Pesa's Transaction Status, never resending blindly). `make` queues the payouts (fare
    shares by default; deposit refunds in tests/ledger/test_deposits.py). Returns the counts."""
    make(payouts)
    per_round = max(1, payouts // (kills + 1))
    stranded_total = 0
    with simulator(hang_seconds=120) as sim:
        env = daraja_env(
            sim, server, TUKTUK_PAYOUT_BATCH_SIZE="10", TUKTUK_PAYOUT_SENDING_STALE_SECONDS="1"
        )
        crew = Workers(env)

        def hangs() -> int:
            return sum(r["outcome"] == "hang" for r in sim.state()["b2c_requests"])

        try:
            for round_number in range(kills):
                # The next request after `per_round` good ones hangs: the worker is inside a
                # B2C call, its batch claimed.
                sim.script(*(["ok"] * per_round), "hang")
                crew.start(1)
                wait_until(
                    lambda n=round_number: hangs() > n, timeout=120 + payouts * 0.2,
                    what=f"the hanging request of round {round_number + 1}",
                )  # fmt: skip
                crew.kill(signal.SIGKILL)
                stranded = Payout.objects.filter(state=PayoutState.SENDING).count()
                assert stranded >= 1  # claimed, in flight or next in line when it died
                stranded_total += stranded
            sim.script()  # no more forced outcomes
            crew.start(1)  # recovery: sending -> unknown -> status query -> settled
            wait_until(
                all_payouts(PayoutState.COMPLETED), timeout=120 + payouts * 0.5, what="recovery"
            )
        finally:
            crew.kill(signal.SIGTERM)
        assert sim.wait_for_callbacks(120)
        state = sim.state()
        accepted = Counter(
            r["originator_conversation_id"] for r in state["b2c_requests"] if r["accepted"]
        )
        paid = [p for p in state["payments"].values() if p["paid"]]
        assert_paid_exactly_once(sim)
    return {
        "sent": payouts,
        "acknowledged": len(accepted),
        "credited": Payout.objects.filter(state=PayoutState.COMPLETED).count(),
        "doubled": sum(1 for n in accepted.values() if n > 1),
        "lost": payouts - len(paid),
        "double_paid": sum(1 for n in accepted.values() if n > 1),
        "stranded_sending": stranded_total,
        "kills": kills,
    }
