"""The fault campaign's harness (issue 9): shared by tests/faults/ (small counts, in the suite)
and bench/faults/run.py (large counts), so both run the same code.

The scale comes from TUKTUK_FAULTS_SCALE (`small`, the default, or `large`); when
TUKTUK_FAULTS_REPORT names a file, every scenario appends its counts to it as one JSON line
(the bench prints them as a table).

Counts, per scenario (see bench/README.md):
- sent: distinct TransIDs sent (deliveries: HTTP requests, retries and copies included);
- acknowledged: TransIDs answered 200 at least once (M-Pesa stops retrying those);
- credited: TransIDs with a transaction in the ledger;
- doubled: TransIDs with more than one transaction or contribution entry;
- lost: acknowledged but not credited;
- double_paid: payments with more than one payout, or B2C payments made twice by M-Pesa.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from django.db import connection
from django.db.models import Count, Sum

from tests.support.c2b import confirmation_payload
from tests.support.live_server import (
    REPO_ROOT,
    LiveServer,
    child_env,
    free_port,
    live_server_process,
)
from tuktuk.ledger.models import LedgerEntry, Transaction
from tuktuk.payouts.models import Payout

SCALE_ENV = "TUKTUK_FAULTS_SCALE"
REPORT_ENV = "TUKTUK_FAULTS_REPORT"


@dataclass(frozen=True)
class Scale:
    name: str
    storm_receipts: int  # scenario 1: distinct TransIDs
    storm_copies: int  # ... each sent this many times to each of the two servers
    kill_receipts: int  # scenario 2: TransIDs sent while a server is killed
    payouts: int  # scenario 3: payouts in the batch the worker dies in
    payout_kills: int  # ... kill -9 / restart rounds
    crash_receipts: int  # scenario 4: TransIDs sent while the database crashes
    midnight_receipts: int  # scenario 5: TransIDs in the burst across the cutoff
    fuzz_bodies: int  # scenario 6: generated bodies per endpoint
    concurrency: int  # HTTP requests in flight


SCALES = {
    "small": Scale(
        name="small",
        storm_receipts=15,
        storm_copies=2,
        kill_receipts=40,
        payouts=60,
        payout_kills=1,
        crash_receipts=40,
        midnight_receipts=24,
        fuzz_bodies=25,
        concurrency=8,
    ),
    "large": Scale(
        name="large",
        storm_receipts=300,
        storm_copies=3,
        kill_receipts=600,
        payouts=300,
        payout_kills=3,
        crash_receipts=600,
        midnight_receipts=200,
        fuzz_bodies=500,
        concurrency=16,
    ),
}


def scale() -> Scale:
    name = os.environ.get(SCALE_ENV, "small")
    if name not in SCALES:
        raise ValueError(f"{SCALE_ENV}={name!r}: expected one of {sorted(SCALES)}")
    return SCALES[name]


# --- Counting, from the database -------------------------------------------------------------


def money_counts(*, sent: set[str], acknowledged: set[str]) -> dict[str, int]:
    """The campaign's counts for the TransIDs a scenario sent, read from the database."""
    transactions = Counter(Transaction.objects.values_list("trans_id", flat=True))
    entries = Counter(
        LedgerEntry.objects.filter(transaction__isnull=False).values_list(
            "transaction__trans_id", flat=True
        )
    )
    credited = {tid for tid in sent if tid in transactions}
    doubled = {tid for tid in sent if transactions[tid] > 1 or entries[tid] > 1}
    paid_twice = (
        Payout.objects.filter(transaction__isnull=False)
        .values("transaction")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    return {
        "sent": len(sent),
        "acknowledged": len(acknowledged & sent),
        "credited": len(credited),
        "doubled": len(doubled),
        "lost": len(acknowledged - credited),
        "double_paid": paid_twice,
        "credited_unsent": len(set(transactions) - sent),
        "redeliveries": int(Transaction.objects.aggregate(s=Sum("redeliveries"))["s"] or 0),
    }


def report(scenario: str, counts: dict[str, Any], *, vendor: str | None = None) -> None:
    """Print the counts and, for the bench, append them to TUKTUK_FAULTS_REPORT."""
    line = {"scenario": scenario, "backend": vendor or connection.vendor, "scale": scale().name}
    line.update(counts)
    print(f"fault campaign: {json.dumps(line)}")
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps(line) + "\n")


def assert_exactly_once(counts: dict[str, int], *, everything_acknowledged: bool = True) -> None:
    assert counts["doubled"] == 0, counts
    assert counts["lost"] == 0, counts
    assert counts["double_paid"] == 0, counts
    assert counts["credited_unsent"] == 0, counts
    if everything_acknowledged:
        assert counts["acknowledged"] == counts["sent"] == counts["credited"], counts


# --- Sending as M-Pesa does ------------------------------------------------------------------


def receipts(prefix: str, count: int, *, accounts: Sequence[str], seed: int) -> list[dict]:
    """`count` Daraja confirmations with distinct TransIDs over `accounts`."""
    rng = random.Random(seed)
    return [
        confirmation_payload(
            trans_id=f"{prefix}{i:06d}",
            amount=rng.choice(["50", "70", "100", "150", "200", "250.50", "300", "480"]),
            account=rng.choice(list(accounts)),
        )
        for i in range(count)
    ]


@dataclass
class Delivery:
    trans_id: str
    attempts: int = 0
    acknowledged: bool = False
    answers: list[str] = field(default_factory=list)  # status codes, or the transport error


class Watermark:
    """A count that other threads wait on: `reached(n)` is set once the count is at least n."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0
        self._waiters: list[tuple[int, threading.Event]] = []

    def add(self) -> None:
        with self._lock:
            self.value += 1
            for threshold, event in self._waiters:
                if self.value >= threshold:
                    event.set()

    def reached(self, threshold: int) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._waiters.append((threshold, event))
            if self.value >= threshold:
                event.set()
        return event


class MpesaSender:
    """Delivers confirmations the way M-Pesa does: a non-200 answer or a connection error is
    retried (after `backoff` seconds, to `target(attempt)`) until answered 200 or `give_up`
    seconds have passed. `acknowledged` and `failures` count answers as they arrive."""

    def __init__(
        self,
        *,
        target: Callable[[int], str],
        concurrency: int,
        give_up: float = 120,
        backoff: float = 0.1,
        timeout: float = 30,
    ) -> None:
        self.target = target
        self.concurrency = concurrency
        self.give_up = give_up
        self.backoff = backoff
        self.timeout = timeout
        self.acknowledged = Watermark()
        self.failures = Watermark()
        self.deliveries: dict[str, Delivery] = {}

    def _deliver(self, client: httpx.Client, payload: dict, pace: float | None) -> None:
        if pace is not None and (wait := pace - time.monotonic()) > 0:
            time.sleep(wait)  # an open-loop burst: each confirmation at its moment
        delivery = self.deliveries[payload["TransID"]]
        body = json.dumps(payload)
        deadline = time.monotonic() + self.give_up
        while time.monotonic() < deadline:
            url = self.target(delivery.attempts)
            delivery.attempts += 1
            try:
                response = client.post(
                    url, content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.TransportError as exc:
                delivery.answers.append(type(exc).__name__)
            else:
                delivery.answers.append(str(response.status_code))
                if response.status_code == 200:
                    delivery.acknowledged = True
                    self.acknowledged.add()
                    return
            self.failures.add()
            time.sleep(self.backoff)  # M-Pesa's retry interval, not a hand-off

    def run(self, payloads: Sequence[dict], *, spread_over: float | None = None) -> None:
        """Send every payload (`spread_over` seconds: evenly paced, else as fast as allowed)."""
        for payload in payloads:
            self.deliveries[payload["TransID"]] = Delivery(payload["TransID"])
        start = time.monotonic()
        step = (spread_over or 0) / max(1, len(payloads))
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        with (
            httpx.Client(timeout=self.timeout, limits=limits) as client,
            ThreadPoolExecutor(max_workers=self.concurrency) as pool,
        ):
            futures = [
                pool.submit(
                    self._deliver,
                    client,
                    payload,
                    start + i * step if spread_over is not None else None,
                )
                for i, payload in enumerate(payloads)
            ]
            for future in futures:
                future.result()

    def run_in_background(self, payloads: Sequence[dict]) -> threading.Thread:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                self.run(payloads)
            except BaseException as exc:  # pragma: no cover - re-raised by join_sender
                errors.append(exc)

        thread = threading.Thread(target=work, daemon=True)
        thread.errors = errors  # type: ignore[attr-defined]
        thread.start()
        return thread

    @property
    def sent(self) -> set[str]:
        return set(self.deliveries)

    @property
    def acked(self) -> set[str]:
        return {tid for tid, d in self.deliveries.items() if d.acknowledged}

    def answers(self) -> Counter[str]:
        return Counter(a for d in self.deliveries.values() for a in d.answers)


def join_sender(thread: threading.Thread, *, timeout: float) -> None:
    thread.join(timeout)
    assert not thread.is_alive(), "the sender did not finish"
    errors = thread.errors  # type: ignore[attr-defined]
    if errors:
        raise errors[0]


def post_all(
    jobs: Sequence[tuple[str, bytes, str]], *, concurrency: int, timeout: float = 60
) -> list[httpx.Response]:
    """POST every (url, body, content type), `concurrency` at a time, no retries; the first
    wave leaves together at a barrier so it really overlaps."""
    barrier = threading.Barrier(min(concurrency, len(jobs)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(timeout=timeout, limits=limits) as client:

        def send(index: int) -> httpx.Response:
            if index < barrier.parties:
                barrier.wait()
            url, body, content_type = jobs[index]
            return client.post(url, content=body, headers={"Content-Type": content_type})

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(send, range(len(jobs))))


@contextmanager
def live_servers(count: int, **options: Any) -> Iterator[list[LiveServer]]:
    """`count` live_server_process servers, started at the same time (each takes seconds to
    boot on a busy machine), stopped together."""
    contexts = [live_server_process(**options) for _ in range(count)]
    with ExitStack() as stack, ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(context.__enter__) for context in contexts]
        servers, failure = [], None
        for context, future in zip(contexts, futures, strict=True):
            try:
                servers.append(future.result())
            except Exception as exc:
                failure = failure or exc
            else:
                stack.push(context.__exit__)
        if failure is not None:
            raise failure
        yield servers


# --- Killing processes -----------------------------------------------------------------------


def server_kill(server: LiveServer) -> None:
    """kill -9 the gunicorn arbiter and its workers at once (a crashed machine or OOM kill);
    the server must have been started with new_session=True (its own process group)."""
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)


def tuktuk(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `tuktuk ARGS` as an operator (or cron) would."""
    return subprocess.run(
        [sys.executable, "-m", "tuktuk", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


FAULTS_OPERATOR = "faults"


def replay_callbacks(env: dict[str, str]) -> str:
    """The worker's replay, without waiting two minutes for rows to be stale: every stored
    confirmation left `received` (by a kill) or `failed` is posted or marked duplicate."""
    # The replay command names its operator (issue 9: nothing moves money anonymously); a
    # superuser in whichever database `env` points at (the test database or a private one).
    tuktuk(
        "createsuperuser",
        "--noinput",
        "--username",
        FAULTS_OPERATOR,
        "--email",
        "faults@example.com",
        env={**env, "DJANGO_SUPERUSER_PASSWORD": "faults-pw-for-tests"},
    )  # "already taken" on a second call: fine, the user is there
    done = tuktuk("replay-callbacks", "--stale-seconds", "0", "--user", FAULTS_OPERATOR, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# --- A private PostgreSQL cluster, to crash --------------------------------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class NoPrivateCluster(Exception):
    pass


@dataclass
class PrivateCluster:
    """A PostgreSQL 15 cluster of our own in a temporary directory, on a free port: crashing it
    touches no other test (the shared cluster on 5432 stays up)."""

    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "tuktuk") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str) -> None:
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]
        done = subprocess.run(_as_postgres(command), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)}: {done.stdout}{done.stderr}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c shared_buffers=32MB -c max_connections=120"
        )
        self._pg_ctl("-l", str(self.directory / "log"), "-o", options, "-w", "-t", "60", "start")

    def crash(self) -> None:
        """`pg_ctl stop -m immediate`: every backend killed, no checkpoint; WAL recovery on the
        next start."""
        self._pg_ctl("-m", "immediate", "stop")

    def create_database(self, name: str = "tuktuk") -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


def _as_postgres(command: list[str]) -> list[str]:
    if pwd.getpwuid(os.geteuid()).pw_name == "postgres":
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def private_postgresql() -> Iterator[PrivateCluster]:
    if not (PG_BIN / "initdb").exists():
        raise NoPrivateCluster(f"no PostgreSQL 15 at {PG_BIN}")
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        raise NoPrivateCluster("a private cluster needs root (runuser) or the postgres user")
    try:
        postgres = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise NoPrivateCluster("no postgres user") from exc
    directory = Path(tempfile.mkdtemp(prefix="tuktuk-faults-pg-"))
    os.chown(directory, postgres.pw_uid, postgres.pw_gid)
    cluster = PrivateCluster(directory=directory, port=free_port())
    try:
        done = subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(cluster.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb: {done.stdout}{done.stderr}")
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.crash()
        except RuntimeError:
            pass  # already down
        shutil.rmtree(directory, ignore_errors=True)


def other_database_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a process working on another database than the test database."""
    return child_env(database=False, TUKTUK_DATABASE_URL=url, **extra)


def other_database_run(command: str, *, env: dict[str, str], stdin: str = "") -> dict[str, Any]:
    """tests/support/faults_db.py COMMAND on the database of `env`; its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.faults_db", command],
        env=env,
        cwd=REPO_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"faults_db {command} failed:\n{done.stdout}\n{done.stderr}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- Fuzzed callback bodies ------------------------------------------------------------------

# Expected outcome of a body: credited (and accepted by validation), rejected (400 for a
# confirmation, a refusal for validation), or stored as an uncaptured payment.
CREDIT, REJECT, UNMATCHED = "credit", "reject", "unmatched"


@dataclass(frozen=True)
class FuzzBody:
    category: str
    body: bytes
    content_type: str
    expect: str
    trans_id: str = ""


def json_pairs(pairs: Sequence[tuple[str, object]], *, ascii_only: bool = True) -> bytes:
    """A JSON object written pair by pair (a key may repeat), escaped like Daraja's."""
    return (
        "{"
        + ", ".join(
            f"{json.dumps(k, ensure_ascii=ascii_only)}: {json.dumps(v, ensure_ascii=ascii_only)}"
            for k, v in pairs
        )
        + "}"
    ).encode()


NAMES = ["John", "Wanjikũ", "Ōtieno", "Zoë", "Мария", "محمد", "李", "Jo😀"]


def _good(rng: random.Random, trans_id: str, accounts: Sequence[str]) -> dict[str, Any]:
    cents = rng.choice(["", ".5", ".25", ".00"])
    payload: dict[str, Any] = confirmation_payload(
        trans_id=trans_id, amount=f"{rng.randint(1, 5000)}{cents}", account=rng.choice(accounts)
    )
    payload["FirstName"] = rng.choice(NAMES)
    return payload


def _case(rng: random.Random, category: str, n: int, accounts: Sequence[str]) -> FuzzBody:
    tid = f"FZ{category[:3].upper()}{n:06d}"
    good = _good(rng, tid, accounts)
    as_json = "application/json"

    def body(payload: Any) -> bytes:
        return json.dumps(payload, ensure_ascii=rng.random() < 0.5).encode()

    def with_(**changes: Any) -> bytes:
        return body({**good, **changes})

    if category == "valid":
        return FuzzBody(category, body(good), as_json, CREDIT, tid)
    if category == "valid-form":
        return FuzzBody(category, urlencode(good).encode(), "application/x-www-form-urlencoded",
                        CREDIT, tid)  # fmt: skip
    if category == "amount-json-number":
        return FuzzBody(category, with_(TransAmount=rng.randint(1, 5000)), as_json, CREDIT, tid)
    if category == "unknown-account":
        return FuzzBody(category, with_(BillRefNumber=f"NOPE{n}"), as_json, UNMATCHED, tid)
    text = body(good)
    choices: dict[str, Callable[[], tuple[bytes, str]]] = {
        "truncated-json": lambda: (text[: rng.randrange(1, len(text) - 1)], as_json),
        "garbage": lambda: (
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))),
            rng.choice([as_json, "application/octet-stream", "text/plain"]),
        ),
        "not-an-object": lambda: (
            rng.choice([b"[]", b"[1,2]", b'"TransID"', b"42", b"null", b"true", b"[" * 3000]),
            as_json,
        ),
        "deep-nesting": lambda: (b'{"a":' * rng.randrange(100, 5000), as_json),
        "empty": lambda: (rng.choice([b"", b" ", b"\n\t", b"{}"]), as_json),
        "nul-bytes": lambda: (
            rng.choice(
                [
                    text.replace(b'"TransID"', b'"Trans\x00ID"'),
                    with_(BillRefNumber="TUK\u0000001"),
                    with_(TransID=tid + "\u0000"),
                    b"\x00" * rng.randrange(1, 200),
                ]
            ),
            as_json,
        ),
        "huge-number": lambda: (
            rng.choice(
                [
                    with_(TransAmount="1" + "0" * rng.randrange(13, 400)),
                    text.replace(f'"{good["TransAmount"]}"'.encode(), b"1e400"),
                    with_(TransAmount="250000.01"),
                    with_(TransAmount="99999999999999.99"),
                    text.replace(f'"{good["TransAmount"]}"'.encode(), b"9" * 5000),
                ]
            ),
            as_json,
        ),
        "bad-amount": lambda: (
            with_(
                TransAmount=rng.choice(
                    [
                        "-100",
                        "0",
                        "0.00",
                        "1.001",
                        "abc",
                        "",
                        " ",
                        "NaN",
                        "Infinity",
                        "1,000",
                        "1e3",
                        "0x10",
                        [100],
                        {"v": 1},
                        None,
                        True,
                    ]
                )
            ),
            as_json,
        ),
        "bad-trans-id": lambda: (
            rng.choice(
                [
                    with_(TransID=""),
                    with_(TransID="AB-12"),
                    with_(TransID="X" * 65),
                    with_(TransID=["A1"]),
                    with_(TransID={"a": 1}),
                    body({k: v for k, v in good.items() if k != "TransID"}),
                ]
            ),
            as_json,
        ),
        "control-chars": lambda: (
            with_(BillRefNumber=f"TUK{chr(rng.randrange(1, 32))}001"),
            as_json,
        ),
        "invalid-utf8": lambda: (text.replace(b'"John"', b'"J\xffhn"') + b"\xc3", as_json),
        "multipart": lambda: (text, "multipart/form-data; boundary=x"),
        "oversized": lambda: (with_(FirstName="x" * rng.randrange(70_000, 200_000)), as_json),
    }
    if category not in choices:
        raise ValueError(category)
    content, content_type = choices[category]()
    return FuzzBody(category, content, content_type, REJECT)


C2B_CATEGORIES = [
    "valid",
    "valid-form",
    "amount-json-number",
    "unknown-account",
    "truncated-json",
    "garbage",
    "not-an-object",
    "deep-nesting",
    "empty",
    "nul-bytes",
    "huge-number",
    "bad-amount",
    "bad-trans-id",
    "control-chars",
    "invalid-utf8",
    "multipart",
    "oversized",
]


def c2b_fuzz_bodies(count: int, *, accounts: Sequence[str], seed: int) -> list[FuzzBody]:
    """`count` C2B bodies, every category at least once, the rest drawn at random."""
    rng = random.Random(seed)
    picks = C2B_CATEGORIES + [rng.choice(C2B_CATEGORIES) for _ in range(count)]
    return [_case(rng, category, n, accounts) for n, category in enumerate(picks[:count])]


def c2b_defect_bodies(defect: str, *, accounts: Sequence[str], seed: int) -> list[FuzzBody]:
    """Bodies of the shapes the parser got wrong (issue 9, defects 3 and 7): all rejected."""
    rng = random.Random(seed)
    good = _good(rng, f"FZD{defect[:3].upper()}1", accounts)

    def pairs(**changes: object) -> list[tuple[str, object]]:
        return [(k, changes.get(k, v)) for k, v in good.items()] + [
            (k, v) for k, v in changes.items() if k not in good
        ]

    cases: dict[str, list[bytes]] = {
        "lone-surrogate": [
            json_pairs(pairs(FirstName="\ud800")),
            json_pairs(pairs(LastName="Doe\udfff")),
            json_pairs(pairs(BillRefNumber=good["BillRefNumber"] + "\ud800")),
            json_pairs(pairs(InvoiceNumber="\ud83d")),
        ],
        "duplicate-keys": [
            json_pairs([*pairs(), ("TransAmount", "1000.00")]),
            json_pairs([("TransID", "FZDDUP2"), *pairs()]),
            json_pairs([*pairs(), ("BillRefNumber", accounts[0])]),
        ],
        "trans-id-wrong-type": [
            json_pairs(pairs(TransID=12345)),
            json_pairs(pairs(TransID=True)),
            json_pairs(pairs(TransID=None)),
        ],
        "non-ascii-digits": [
            json_pairs(pairs(TransAmount="١٥٠"), ascii_only=False),
            json_pairs(pairs(TransAmount="１５０")),
            json_pairs(pairs(TransAmount="१००.००"), ascii_only=False),
        ],
    }
    return [FuzzBody(defect, b, "application/json", REJECT) for b in cases[defect]]


def b2c_fuzz_bodies(count: int, *, seed: int) -> list[FuzzBody]:
    """B2C result bodies: malformed ones (rejected) and well-formed ones for payouts we never
    made (stored as unmatched); none may change a payout."""
    rng = random.Random(seed)

    def result(**changes: Any) -> bytes:
        body: dict[str, Any] = {
            "Result": {
                "ResultType": 0,
                "ResultCode": rng.choice([0, 1, 2001, "0"]),
                "ResultDesc": "The service request is processed successfully.",
                "OriginatorConversationID": f"FZ-{rng.randrange(10**9)}",
                "ConversationID": f"AG_{rng.randrange(10**9)}",
                "TransactionID": "RCPT0",
                "ResultParameters": {
                    "ResultParameter": [{"Key": "TransactionReceipt", "Value": "RCPT0"}]
                },
                "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": "x"}},
            }
        }
        body["Result"].update(changes)
        return json.dumps(body).encode()

    makers: list[tuple[str, str, Callable[[], bytes]]] = [
        ("unmatched", UNMATCHED, result),
        ("truncated", REJECT, lambda: result()[: rng.randrange(1, 100)]),
        ("no-result", REJECT, lambda: json.dumps({"Foo": 1}).encode()),
        ("result-not-object", REJECT,
         lambda: json.dumps({"Result": rng.choice(["x", 1])}).encode()),
        ("not-an-object", REJECT, lambda: rng.choice([b"[]", b"null", b"7"])),
        ("empty", REJECT, lambda: b""),
        ("garbage", REJECT, lambda: bytes(rng.randrange(256) for _ in range(50))),
        ("no-result-code", REJECT,
         lambda: json.dumps({"Result": {"OriginatorConversationID": "x"}}).encode()),
        ("nul-bytes", REJECT, lambda: b"\x00" * 20),
        ("oversized", REJECT, lambda: result(ResultDesc="x" * 100_000)),
    ]  # fmt: skip
    bodies = []
    for n in range(count):
        category, expect, make = makers[n] if n < len(makers) else rng.choice(makers)
        bodies.append(FuzzBody(category, make(), "application/json", expect))
    return bodies


def b2c_defect_bodies() -> list[FuzzBody]:
    """B2C bodies of shapes the parser answered 503 to (issue 9, defect 2): all rejected."""

    def result(**changes: Any) -> bytes:
        body = {"Result": {"ResultCode": 0, "OriginatorConversationID": "FZ-X", **changes}}
        return json.dumps(body).encode()

    return [
        FuzzBody("b2c-wrong-types", b, "application/json", REJECT)
        for b in (
            result(ResultParameters="x"),
            result(ResultParameters=[{"Key": "A", "Value": 1}]),
            result(ReferenceData="x"),
            result(ReferenceData={"ReferenceItem": ["x"]}),
        )
    ]


# --- Midnight on a shifted clock -------------------------------------------------------------


def real_time() -> float:
    """The real wall clock, also under time-machine (--clock-at): libfaketime offsets for the
    children are relative to it."""
    import time_machine

    if time_machine.escape_hatch.is_travelling():
        return float(time_machine.escape_hatch.time.time())
    return time.time()


def shifted_env(offset: float) -> dict[str, str]:
    """Environment additions for a child whose clock runs `offset` seconds from the real one
    (libfaketime, as tests/support/clock_at.py sets it up). Raises pytest.UsageError when
    libfaketime is not installed."""
    from tests.support.clock_at import faketime_env

    env = faketime_env(offset)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (env["PYTHONPATH"], str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p
    )
    return env


def next_midnight(after: float, *, zone: Any) -> dt.datetime:
    local = dt.datetime.fromtimestamp(after, tz=zone)
    return dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
