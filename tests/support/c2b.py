"""Daraja-shaped C2B confirmations, and firing many of them at a live server at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

import httpx


def confirmation_payload(
    *, trans_id: str, amount: Decimal | str, account: str, msisdn: str = "254700000001"
) -> dict[str, str]:
    return {
        "TransactionType": "Pay Bill",
        "TransID": trans_id,
        "TransTime": "20261121103000",
        "TransAmount": str(amount),
        "BusinessShortCode": "600984",
        "BillRefNumber": account,
        "InvoiceNumber": "",
        "OrgAccountBalance": "49197.00",
        "ThirdPartyTransID": "",
        "MSISDN": msisdn,
        "FirstName": "John",
        "MiddleName": "",
        "LastName": "Doe",
    }


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
