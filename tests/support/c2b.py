"""Daraja-shaped C2B confirmations, and firing many of them at a live server at once."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

import httpx

from tuktuk.mpesa.c2b_payload import NAIROBI, c2b_payload

# The tests' payments all happened at this moment, so TransTime never depends on the clock.
TRANS_TIME = dt.datetime(2026, 11, 21, 10, 30, tzinfo=NAIROBI)
PAYER_MSISDN = "254700000001"


def confirmation_payload(
    *, trans_id: str, amount: Decimal | int | str, account: str, msisdn: str = PAYER_MSISDN
) -> dict[str, str]:
    """`c2b_payload` with the tests' fixed time and payer."""
    return c2b_payload(
        trans_id=trans_id, amount=amount, account=account, msisdn=msisdn, when=TRANS_TIME
    )


@dataclass(frozen=True)
class Delivery:
    payload: dict[str, str]

    @property
    def trans_id(self) -> str:
        return self.payload["TransID"]


def fire_concurrently(
    url: str, deliveries: Sequence[Delivery], *, concurrency: int
) -> list[httpx.Response]:
    """POST every delivery, `concurrency` at a time; all threads start together at a barrier."""
    barrier = threading.Barrier(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(timeout=60, limits=limits) as client:

        def send(index: int) -> httpx.Response:
            if index < concurrency:
                barrier.wait()  # the first wave leaves together, so it really overlaps
            body = json.dumps(deliveries[index].payload)
            return client.post(url, content=body, headers={"Content-Type": "application/json"})

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(send, range(len(deliveries))))
