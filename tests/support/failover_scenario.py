"""Kill the PostgreSQL primary under C2B load and check that no acknowledged payment is lost.

Shared by tests/faults/test_pg_failover.py (small) and bench/faults/pg_failover.py (larger,
`make bench-failover`). The steps:

1. A pg_auto_failover formation (tests/support/pg_auto_failover.py): monitor, primary and a
   synchronous standby; `tuktuk migrate` and `tuktuk demo` on it through the multi-host URL.
2. `tuktuk serve`'s gunicorn and a `tuktuk worker` on the same URL.
3. Senders (threads, one keep-alive HTTP connection each) POST Daraja-shaped confirmations,
   each with a new TransID, and retry any answer but 200 as M-Pesa does, until it is 200.
   Which TransIDs were acknowledged, and when, is recorded.
4. After `warmup` acknowledgements the primary's node is SIGKILLed (keeper, postmaster and
   backends at once). The senders keep going; the monitor promotes the standby.
5. After `after` more acknowledgements of confirmations first sent after the kill, the senders
   stop (each finishes the TransID it has), then a burst of fresh confirmations must all be
   answered 200 at the first try: the server recovered by itself, without a restart. The
   worker must have run a pass on the new primary.
6. On the new primary: settle the callbacks the outage left stored but unposted
   (`replay-callbacks --stale-seconds 0`), then every acknowledged TransID has exactly one
   transaction, no transaction is for a TransID never sent, the ledger invariants hold
   (tests/support/invariants.py) and `tuktuk reconcile --all` finds nothing.
"""

from __future__ import annotations

import json
import random
import string
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.support.live_server import CALLBACK_TOKEN, REPO_ROOT, child_env, live_server_process
from tests.support.pg_auto_failover import Formation, formation
from tuktuk.mpesa.c2b_payload import c2b_payload

# The demo fleet's accounts (tuktuk.fleet.demo.DEMO_FLEET, not imported: no Django set-up here).
ACCOUNTS = [f"TUK{n:03d}" for n in range(1, 8)]
TUKTUK = str(Path(sys.executable).with_name("tuktuk"))
PASSENGER = "254790000001"  # not a demo driver's number: a fare, never a debt repayment
RETRY_DELAY = 0.1  # between a sender's retries of one TransID (M-Pesa waits longer)


@dataclass
class FailoverReport:
    prefix: str = ""
    sent: set[str] = field(default_factory=set)
    acked: dict[str, float] = field(default_factory=dict)  # TransID -> when (s since start)
    attempts: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # non-200 answers, by status
    killed_at: float = 0.0
    promoted_at: float = 0.0  # the monitor shows the standby writable
    recovered_at: float = 0.0  # first 200 for a request sent after the kill
    sync_standby_names: str = ""
    old_primary: str = ""
    new_primary: str = ""
    burst: list[int] = field(default_factory=list)  # statuses of the post-failover burst
    worker_alive: bool = False
    worker_pass_after_failover: bool = False
    replayed: str = ""
    transactions: Counter[str] = field(default_factory=Counter)
    invariants: str = ""
    reconcile_exit: int = -1
    events: list[tuple[str, str]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds since start, at each step

    @property
    def failover_seconds(self) -> float:
        return self.promoted_at - self.killed_at

    @property
    def outage_seconds(self) -> float:
        return self.recovered_at - self.killed_at

    def problems(self) -> list[str]:
        """Everything that is wrong; empty when the run proved what it should."""
        found = []
        missing = sorted(set(self.acked) - set(self.transactions))
        if missing:
            found.append(f"{len(missing)} acknowledged TransIDs have no transaction: {missing[:5]}")
        doubled = [t for t, n in self.transactions.items() if n > 1]
        if doubled:
            found.append(f"TransIDs posted twice: {doubled[:5]}")
        unknown = sorted(set(self.transactions) - self.sent)
        if unknown:
            found.append(f"transactions for TransIDs never sent: {unknown[:5]}")
        unacked = sorted(self.sent - set(self.acked))
        if unacked:
            found.append(f"{len(unacked)} TransIDs never acknowledged: {unacked[:5]}")
        if not self.sync_standby_names:
            found.append("the primary had no synchronous standby before the kill")
        if self.new_primary == self.old_primary:
            found.append("no failover happened")
        if not self.refused:
            found.append("no request failed during the outage: was the primary really killed?")
        if any(status != 200 for status in self.burst):
            found.append(f"after the failover, not every request succeeded: {Counter(self.burst)}")
        if not self.worker_alive:
            found.append("the worker died")
        if not self.worker_pass_after_failover:
            found.append("the worker ran no pass on the new primary")
        if self.invariants != "ok":
            found.append(f"ledger invariants: {self.invariants}")
        if self.reconcile_exit != 0:
            found.append(f"tuktuk reconcile --all exited {self.reconcile_exit}")
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "confirmations_sent": len(self.sent),
            "acknowledged": len(self.acked),
            "http_attempts": self.attempts,
            "refused_during_outage": dict(self.refused),
            "transactions": sum(self.transactions.values()),
            "acked_before_kill": sum(1 for t in self.acked.values() if t < self.killed_at),
            "synchronous_standby_names": self.sync_standby_names,
            "old_primary": self.old_primary,
            "new_primary": self.new_primary,
            "failover_seconds_kill_to_promotion": round(self.failover_seconds, 2),
            "outage_seconds_kill_to_first_200": round(self.outage_seconds, 2),
            "burst_after_failover": dict(Counter(self.burst)),
            "worker_alive": self.worker_alive,
            "worker_pass_after_failover": self.worker_pass_after_failover,
            "replayed_after_failover": self.replayed,
            "invariants": self.invariants,
            "reconcile_exit": self.reconcile_exit,
            "phases_seconds": {name: round(t, 1) for name, t in self.phases.items()},
        }


class Load:
    """Senders that each send new confirmations and retry each until it is answered 200."""

    def __init__(self, url: str, *, senders: int, start: float) -> None:
        self.url = url
        self.start = start
        self.report_lock = threading.Lock()
        self.acked_changed = threading.Condition(self.report_lock)
        self.stop = threading.Event()
        self.hard_stop = threading.Event()
        self.prefix = "HA" + "".join(random.choices(string.ascii_uppercase, k=4))
        self.counter = 0
        self.report = FailoverReport()
        self.threads = [threading.Thread(target=self._send_loop) for _ in range(senders)]

    def now(self) -> float:
        return time.monotonic() - self.start

    def next_payload(self) -> dict[str, str]:
        with self.report_lock:
            self.counter += 1
            number = self.counter
            trans_id = f"{self.prefix}{number:07d}"
            self.report.sent.add(trans_id)
        return c2b_payload(
            trans_id=trans_id,
            amount=Decimal(50 + number % 450),
            account=ACCOUNTS[number % len(ACCOUNTS)],
            msisdn=PASSENGER,
        )

    def deliver(self, client: httpx.Client, payload: dict[str, str]) -> None:
        """POST until 200 (or the hard stop), as M-Pesa retries an unacknowledged callback."""
        body = json.dumps(payload)
        while not self.hard_stop.is_set():
            sent_at = self.now()
            try:
                response = client.post(
                    self.url, content=body, headers={"Content-Type": "application/json"}
                )
                status = str(response.status_code)
                ok = response.status_code == 200 and response.json().get("ResultCode") == 0
            except httpx.TransportError as exc:
                status, ok = type(exc).__name__, False
            with self.report_lock:
                self.report.attempts += 1
                if ok:
                    self.report.acked[payload["TransID"]] = self.now()
                    if self.report.killed_at and sent_at > self.report.killed_at:
                        if not self.report.recovered_at:
                            self.report.recovered_at = self.now()
                    self.acked_changed.notify_all()
                    return
                self.report.refused[status] += 1
            self.hard_stop.wait(RETRY_DELAY)

    def _send_loop(self) -> None:
        with httpx.Client(timeout=15) as client:
            while not self.stop.is_set() and not self.hard_stop.is_set():
                self.deliver(client, self.next_payload())

    def acked_since_kill(self) -> int:
        killed = self.report.killed_at
        return sum(1 for t in self.report.acked.values() if t > killed)

    def wait_until(self, condition: Any, *, timeout: float, what: str) -> None:
        with self.acked_changed:
            if not self.acked_changed.wait_for(condition, timeout=timeout):
                raise TimeoutError(f"timed out waiting for {what}")


def run(
    env: dict[str, str], *arguments: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TUKTUK, *arguments], env=env, cwd=REPO_ROOT, check=check, capture_output=True, text=True
    )


def scheduled_run(url: str) -> Any:
    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute(
            "SELECT last_run_at FROM backoffice_scheduledrun WHERE name = 'reconcile-scheduled'"
        ).fetchone()
    return row[0] if row else None


# One Django start-up each (a `tuktuk` command costs seconds of start-up on a busy machine).
SET_UP = """
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
call_command("demo", verbosity=0)
"""
CHECKS = """
from django.core.management import call_command
from tests.support.invariants import assert_invariants
# What the outage left stored, unposted; the replay names its operator (the demo's superuser).
call_command("replay_callbacks", stale_seconds=0, user="admin")
assert_invariants()
print("invariants: ok")
try:
    call_command("reconcile", all=True)
except SystemExit as exit:
    print(f"reconcile exit: {exit.code}")
else:
    print("reconcile exit: 0")
"""


def failover_run(
    *,
    work: Path,
    warmup: int = 100,
    after: int = 100,
    senders: int = 8,
    workers: int = 2,
    threads: int = 4,
    burst: int = 40,
    timeout: float = 240,
) -> FailoverReport:
    """The scenario of this module's docstring; the caller asserts on `report.problems()`."""
    start = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = time.monotonic() - start

    with formation() as pg:
        phase("formation up")
        url = pg.url()
        data_dir = work / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = child_env(
            database=False,
            TUKTUK_DATABASE_URL=url,
            TUKTUK_DATA_DIR=str(data_dir),
            TUKTUK_CALLBACK_TOKEN=CALLBACK_TOKEN,
            TUKTUK_SECRET_KEY="failover-test-secret-key-" + "x" * 40,
            TUKTUK_LOG_LEVEL="WARNING",
        )
        run(env, "shell", "-c", SET_UP)
        phase("migrated, demo fleet")
        worker_env = {**env, "TUKTUK_RECONCILE_EVERY_HOURS": "0.0001"}  # a pass every 0.5 s
        worker_log = (work / "worker.log").open("wb")
        worker = subprocess.Popen(
            [TUKTUK, "worker", "--interval", "0.5"],
            env=worker_env,
            cwd=REPO_ROOT,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        try:
            with live_server_process(
                workers=workers,
                threads=threads,
                database_url=url,
                extra_env={"TUKTUK_DATA_DIR": str(data_dir)},
                log_file=work / "gunicorn.log",
            ) as server:
                phase("server up")
                report = _load_and_kill(
                    pg, server.c2b_url("confirmation"), start, warmup, after, senders, timeout
                )
                burst_ids = [f"{report.prefix}B{n:06d}" for n in range(burst)]
                report.sent.update(burst_ids)
                phase("load stopped")
                report.burst = send_burst(
                    server.c2b_url("confirmation"), burst_ids, threads * workers
                )
                for trans_id, status in zip(burst_ids, report.burst, strict=True):
                    if status == 200:
                        report.acked[trans_id] = time.monotonic() - start
                # The worker: a pass on the new primary, and still the same process.
                seen = scheduled_run(url)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and worker.poll() is None:
                    if scheduled_run(url) != seen:
                        report.worker_pass_after_failover = True
                        break
                    time.sleep(0.1)  # polling the database for the worker's next pass
                report.worker_alive = worker.poll() is None
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            worker_log.close()
        phase("worker checked")
        checked = run(env, "shell", "-c", CHECKS, check=False)
        lines = checked.stdout.splitlines()
        report.replayed = next((line for line in lines if line.startswith("Replayed")), "")
        report.invariants = "ok" if "invariants: ok" in lines else checked.stderr[-3000:]
        exits = [line.split(": ")[1] for line in lines if line.startswith("reconcile exit: ")]
        report.reconcile_exit = int(exits[0]) if exits else -1
        with psycopg.connect(url, autocommit=True) as db:
            report.transactions = Counter(
                row[0] for row in db.execute("SELECT trans_id FROM ledger_transaction")
            )
        report.events = pg.events()
        phase("checked")
    report.phases = phases
    return report


def _load_and_kill(
    pg: Formation,
    url: str,
    start: float,
    warmup: int,
    after: int,
    senders: int,
    timeout: float,
) -> FailoverReport:
    load = Load(url, senders=senders, start=start)
    report = load.report
    report.prefix = load.prefix
    try:
        for thread in load.threads:
            thread.start()
        load.wait_until(lambda: len(report.acked) >= warmup, timeout=timeout, what="the warm-up")
        old = pg.primary()
        report.old_primary = old.name
        report.sync_standby_names = pg.synchronous_standby_names()
        with load.report_lock:
            report.killed_at = load.now()
        pg.kill(old)
        new = pg.wait_for_promotion(old, timeout=timeout)
        report.promoted_at = load.now()
        report.new_primary = new.name
        load.wait_until(
            lambda: load.acked_since_kill() >= after,
            timeout=timeout,
            what="confirmations acknowledged after the failover",
        )
        load.stop.set()  # each sender finishes the TransID it has
        for thread in load.threads:
            thread.join(timeout=timeout)
    finally:
        load.stop.set()
        load.hard_stop.set()
        for thread in load.threads:
            if thread.ident is not None:
                thread.join()
    return report


def send_burst(url: str, trans_ids: list[str], concurrency: int) -> list[int]:
    """Fresh confirmations, `concurrency` at a time; each status of its first (only) try."""
    from concurrent.futures import ThreadPoolExecutor

    def send(index: int) -> int:
        payload = c2b_payload(
            trans_id=trans_ids[index],
            amount=100,
            account=ACCOUNTS[index % len(ACCOUNTS)],
            msisdn=PASSENGER,
        )
        try:
            return httpx.post(
                url,
                content=json.dumps(payload),
                headers={"Content-Type": "application/json"},
                timeout=15,
            ).status_code
        except httpx.TransportError:
            return 0

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(send, range(len(trans_ids))))
