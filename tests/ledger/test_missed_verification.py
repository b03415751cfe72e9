"""A recorded missed payment is verified with M-Pesa's Transaction Status query first (when
Daraja is configured): the simulator answers over HTTP, its result callback reaches our live
server, and only a confirmed receipt with the same amount is posted."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.support.factories import make_driver
from tests.support.invariants import assert_invariants
from tests.support.live_server import LiveServer
from tests.support.payouts import daraja_settings, simulator, wait_until
from tuktuk.ledger.missed import missed_payment_record
from tuktuk.ledger.models import MissedPayment, MissedPaymentState, Transaction

pytestmark = pytest.mark.django_db(transaction=True)


def record(trans_id: str, amount: str) -> MissedPayment:
    return missed_payment_record(
        trans_id=trans_id,
        amount=amount,
        msisdn="0711222333",
        mpesa_time="20260310101500",
        vehicle_id="TUK-001",
        reason="customer showed the SMS",
        actor="manager",
    )


def settled(trans_id: str) -> bool:
    return (
        MissedPayment.objects.exclude(state=MissedPaymentState.VERIFYING)
        .filter(trans_id=trans_id)
        .exists()
    )


@pytest.mark.parametrize(
    ("known_amount", "recorded", "expected"),
    [
        ("200", "200", MissedPaymentState.POSTED),
        ("150", "200", MissedPaymentState.REJECTED),  # M-Pesa says another amount
        (None, "200", MissedPaymentState.REJECTED),  # M-Pesa has no such receipt
    ],
)
def test_receipt_is_verified_before_posting(
    live_server_proc: LiveServer, known_amount: str | None, recorded: str, expected: str
) -> None:
    driver = make_driver(1)
    with simulator() as sim, daraja_settings(sim, live_server_proc):
        if known_amount:
            sim.add_c2b_receipts(TL176BJ1M3=known_amount)
        record("TL176BJ1M3", recorded)  # asks M-Pesa; the answer comes as a callback
        assert sim.wait_for_callbacks(30)
        (query,) = sim.state()["status_queries"]
        assert query["transaction_id"] == "TL176BJ1M3"
        wait_until(lambda: settled("TL176BJ1M3"), timeout=30, what="the status answer")
    final = MissedPayment.objects.get()
    assert final.state == expected, final.detail
    driver.refresh_from_db()
    if expected == MissedPaymentState.POSTED:
        assert final.transaction.trans_id == "TL176BJ1M3"
        assert driver.current_balance == Decimal("100.00")
    else:
        assert not Transaction.objects.exists() and driver.current_balance == 0
    assert_invariants()
