"""Firing Daraja-shaped C2B confirmations at our server, many at once: `tuktuk simulate`.

No Django here: the command reads the accounts and the callback token and passes them in.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import string
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

import httpx

from tuktuk.mpesa.c2b_payload import c2b_payload

FIRST_NAMES = ("John", "Mary", "Peter", "Grace", "Kevin", "Faith", "Brian", "Mercy", "Esther")
LAST_NAMES = ("Otieno", "Wanjiru", "Kamau", "Achieng", "Mwangi", "Njeri", "Kiptoo", "Omondi")
_TRANS_ID_CHARS = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Delivery:
    payload: dict[str, str]
    duplicate: bool = False  # a re-send of a confirmation already in the plan

    @property
    def trans_id(self) -> str:
        return self.payload["TransID"]


@dataclass(frozen=True)
class Answer:
    trans_id: str
    duplicate: bool
    status: int | None  # None: no HTTP answer at all
    result_code: str | None  # the JSON ResultCode, as text
    latency: float  # seconds
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.result_code == "0"


def confirmation_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/c2b/{token}/confirmation"


def new_trans_id(rng: random.Random, taken: set[str]) -> str:
    """An M-Pesa-like receipt: 10 upper-case letters and digits, "SIM" first to tell them apart."""
    while True:
        trans_id = "SIM" + "".join(rng.choice(_TRANS_ID_CHARS) for _ in range(7))
        if trans_id not in taken:
            taken.add(trans_id)
            return trans_id


def fare(rng: random.Random, *, cents: float = 0.0) -> Decimal:
    """A tuktuk fare, 50-500 KSh: mostly round tens, some odd shillings. M-Pesa customers pay
    whole shillings; `cents` is the share given cents anyway, to exercise the decimal paths."""
    if rng.random() < cents:
        return Decimal(f"{rng.randint(50, 499)}.{rng.randint(1, 99):02d}")
    if rng.random() < 0.75:
        return Decimal(rng.randrange(50, 501, 10))
    return Decimal(rng.randint(50, 500))


def confirmation_payload(
    *, trans_id: str, amount: Decimal, account: str, rng: random.Random, when: dt.datetime
) -> dict[str, str]:
    """The body Daraja POSTs to the confirmation URL, from a random passenger."""
    return c2b_payload(
        trans_id=trans_id,
        amount=amount,
        account=account,
        when=when,
        msisdn=f"2547{rng.randint(0, 99_999_999):08d}",
        first_name=rng.choice(FIRST_NAMES),
        last_name=rng.choice(LAST_NAMES),
    )


def plan_deliveries(
    *,
    payments: int,
    duplicates: float,
    accounts: Sequence[str],
    rng: random.Random,
    when: dt.datetime,
    cents: float = 0.0,
) -> list[Delivery]:
    """`payments` distinct confirmations plus round(payments * duplicates) re-sends of some of
    them: every other re-send right behind its original, so both are in flight together (the
    race Daraja's re-delivery causes), the rest later in the stream."""
    taken: set[str] = set()
    originals = [
        Delivery(
            confirmation_payload(
                trans_id=new_trans_id(rng, taken),
                amount=fare(rng, cents=cents),
                account=rng.choice(accounts),
                rng=rng,
                when=when,
            )
        )
        for _ in range(payments)
    ]
    resent = rng.sample(range(payments), round(payments * duplicates))
    deliveries = list(originals)
    # From the back, so inserting never moves an original that is still to be handled.
    for n, index in enumerate(sorted(resent, reverse=True)):
        copy = Delivery(originals[index].payload, duplicate=True)
        if n % 2 == 0:
            deliveries.insert(index + 1, copy)
        else:
            deliveries.insert(rng.randrange(index + 1, len(deliveries) + 1), copy)
    return deliveries


def _send(client: httpx.Client, url: str, delivery: Delivery, not_before: float) -> Answer:
    pause = not_before - time.monotonic()
    if pause > 0:
        time.sleep(pause)  # pacing for --delay-ms, not synchronisation
    body = json.dumps(delivery.payload)
    started = time.perf_counter()
    try:
        response = client.post(url, content=body, headers={"Content-Type": "application/json"})
    except httpx.HTTPError as exc:
        latency = time.perf_counter() - started
        error = type(exc).__name__
        return Answer(delivery.trans_id, delivery.duplicate, None, None, latency, error)
    latency = time.perf_counter() - started
    try:
        code = response.json().get("ResultCode")
    except (ValueError, AttributeError):
        code = None
    result_code = None if code is None else str(code)
    return Answer(delivery.trans_id, delivery.duplicate, response.status_code, result_code, latency)


def fire(
    url: str,
    deliveries: Sequence[Delivery],
    *,
    concurrency: int,
    delay_ms: float = 0.0,
    timeout: float = 30.0,
) -> tuple[list[Answer], float]:
    """POST every delivery, `concurrency` at a time over keep-alive connections, the i-th not
    before start + i * delay_ms. Returns the answers in plan order and the elapsed seconds."""
    workers = max(1, min(concurrency, len(deliveries)))
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    started = time.monotonic()
    with (
        httpx.Client(timeout=timeout, limits=limits) as client,
        ThreadPoolExecutor(workers, thread_name_prefix="simulate") as pool,
    ):
        slots = [started + i * delay_ms / 1000 for i in range(len(deliveries))]
        answers = list(pool.map(lambda d, slot: _send(client, url, d, slot), deliveries, slots))
    return answers, time.monotonic() - started


@dataclass(frozen=True)
class Summary:
    sent: int
    unique: int
    duplicates: int
    statuses: Counter[str]
    result_codes: Counter[str]
    elapsed: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    failures: int  # answers that were not HTTP 200 with ResultCode 0

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise(answers: Sequence[Answer], elapsed: float) -> Summary:
    latencies = sorted(answer.latency * 1000 for answer in answers)
    return Summary(
        sent=len(answers),
        unique=len({answer.trans_id for answer in answers}),
        duplicates=sum(answer.duplicate for answer in answers),
        statuses=Counter(
            str(a.status) if a.status is not None else f"no answer ({a.error})" for a in answers
        ),
        result_codes=Counter(str(answer.result_code) for answer in answers),
        elapsed=elapsed,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        max_ms=latencies[-1] if latencies else 0.0,
        failures=sum(not answer.ok for answer in answers),
    )


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key}: {n}" for key, n in sorted(counter.items())) or "none"


def report_lines(summary: Summary) -> list[str]:
    return [
        f"sent {summary.sent} (unique {summary.unique}, duplicates {summary.duplicates})",
        f"HTTP status: {_counts(summary.statuses)}",
        f"ResultCode: {_counts(summary.result_codes)}",
        f"elapsed {summary.elapsed:.2f} s, {summary.rate:.1f} per second",
        f"latency p50 {summary.p50_ms:.1f} ms, p99 {summary.p99_ms:.1f} ms, "
        f"max {summary.max_ms:.1f} ms",
    ]


def record_at_simulator(
    daraja_url: str, deliveries: Sequence[Delivery], *, timeout: float = 30.0
) -> int:
    """Tell the Daraja simulator about the payments (not their re-sends), so its Pull
    Transactions and status queries know them; their confirmations are not delivered by it.
    Returns how many it recorded."""
    payments = [
        {
            "trans_id": d.payload["TransID"],
            "amount": d.payload["TransAmount"],
            "account": d.payload["BillRefNumber"],
            "msisdn": d.payload["MSISDN"],
            "time": d.payload["TransTime"],
            "short_code": d.payload["BusinessShortCode"],
            "first_name": d.payload["FirstName"],
            "last_name": d.payload["LastName"],
        }
        for d in deliveries
        if not d.duplicate
    ]
    url = f"{daraja_url.rstrip('/')}/sim/c2b-payments"
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        for start in range(0, len(payments), 1000):
            response = client.post(url, json={"payments": payments[start : start + 1000]})
            response.raise_for_status()
    return len(payments)
