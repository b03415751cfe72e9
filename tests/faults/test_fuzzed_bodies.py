"""Fault campaign, scenario 6: fuzzed bodies over HTTP against a live server.

Seeded generated bodies (tests/support/faults.py: malformed and truncated JSON, wrong types,
huge numbers, NUL bytes, control characters, invalid UTF-8, form-encoded, multipart, empty,
oversized; and well-formed ones as the control) go to the C2B validation and confirmation
URLs and to the B2C result URL. Never a 5xx; every body stored; a valid one credited exactly
once; nothing credited from a rejected body; no payout changed by a stray result; the
invariants hold.

The shapes the parser got wrong (issue 9 defects 2, 3, 7: lone surrogates, duplicate keys,
wrong-typed TransID, non-ASCII digits, B2C fields of the wrong type) are separate cases; each
failed before the strict reading (mpesa/strict_json.py) was merged.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tests.support.factories import make_driver
from tests.support.faults import (
    CREDIT,
    REJECT,
    UNMATCHED,
    FuzzBody,
    b2c_defect_bodies,
    b2c_fuzz_bodies,
    c2b_defect_bodies,
    c2b_fuzz_bodies,
    post_all,
    report,
    scale,
)
from tests.support.invariants import assert_invariants
from tests.support.live_server import LiveServer
from tuktuk.fleet.models import FleetSettings
from tuktuk.ledger.models import LedgerEntry, Transaction, TransactionStatus
from tuktuk.ledger.services import IncomingPayment, payment_post
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.payouts.models import Payout, PayoutState

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

ACCOUNTS = ["TUK001", "TUK002", "TUK003"]


def fleet_open_around_the_clock() -> None:
    """Validation refuses payments outside operating hours; the fuzz must not depend on the
    time of day."""
    for n in range(1, len(ACCOUNTS) + 1):
        make_driver(n)
    fleet = FleetSettings.load()
    fleet.operating_hours_start = fleet.operating_hours_end = dt.time(0, 0)
    fleet.save()


def send_c2b(server: LiveServer, bodies: list[FuzzBody]) -> dict[str, list[int | str]]:
    """Each body to validation, then to confirmation (as Daraja does); the answers."""
    answers: dict[str, list[int | str]] = {}
    for which in ("validation", "confirmation"):
        url = server.c2b_url(which)
        responses = post_all(
            [(url, b.body, b.content_type) for b in bodies], concurrency=scale().concurrency
        )
        for body, response in zip(bodies, responses, strict=True):
            assert response.status_code < 500, (which, body.category, body.body[:80], response)
            code = response.json()["ResultCode"]
            answers.setdefault(which, []).append(response.status_code)
            answers.setdefault(f"{which}-code", []).append(str(code))
    return answers


def assert_c2b_outcomes(bodies: list[FuzzBody], answers: dict[str, list[int | str]]) -> None:
    for n, body in enumerate(bodies):
        status, code = answers["confirmation"][n], answers["confirmation-code"][n]
        v_status, v_code = answers["validation"][n], answers["validation-code"][n]
        what = (body.category, body.body[:80])
        if body.expect == REJECT:
            assert status in (400, 413) and code == "1", (what, status)
            assert v_status in (200, 413) and v_code != "0", (what, v_status, v_code)
        else:
            assert status == 200 and code == "0", (what, status)
            assert v_code == ("0" if body.expect == CREDIT else "C2B00012"), (what, v_code)
    # Every body stored, once per endpoint.
    for kind in (CallbackKind.C2B_VALIDATION, CallbackKind.C2B_CONFIRMATION):
        assert Callback.objects.filter(kind=kind).count() == len(bodies), kind
    # Credited: exactly the valid ones, once each; nothing from a rejected body.
    credit = {b.trans_id for b in bodies if b.expect == CREDIT}
    unmatched = {b.trans_id for b in bodies if b.expect == UNMATCHED}
    completed = Transaction.objects.filter(status=TransactionStatus.COMPLETED)
    assert set(completed.values_list("trans_id", flat=True)) == credit
    assert LedgerEntry.objects.count() == len(credit)
    assert (
        set(
            Transaction.objects.filter(status=TransactionStatus.UNMATCHED).values_list(
                "trans_id", flat=True
            )
        )
        == unmatched
    )
    rejected = Callback.objects.filter(
        kind=CallbackKind.C2B_CONFIRMATION, state=CallbackState.REJECTED
    )
    assert rejected.count() == sum(b.expect == REJECT for b in bodies)
    assert not rejected.filter(transaction__isnull=False).exists()


def test_fuzzed_c2b_bodies_never_5xx_all_stored_only_valid_ones_credited(
    live_server_proc: LiveServer,
) -> None:
    fleet_open_around_the_clock()
    bodies = c2b_fuzz_bodies(scale().fuzz_bodies, accounts=ACCOUNTS, seed=61)
    answers = send_c2b(live_server_proc, bodies)
    assert_c2b_outcomes(bodies, answers)
    credit = {b.trans_id for b in bodies if b.expect == CREDIT}
    assert credit, "no valid body in the mix: the control proves nothing"
    report(
        "fuzz-c2b",
        {
            "sent": len(bodies),
            "acknowledged": answers["confirmation"].count(200),
            "credited": Transaction.objects.filter(status=TransactionStatus.COMPLETED).count(),
            "doubled": 0,  # one transaction per TransID: asserted by assert_invariants below
            "lost": len(credit) - Transaction.objects.filter(trans_id__in=credit).count(),
            "double_paid": 0,
            "rejected": sum(b.expect == REJECT for b in bodies),
            "categories": len({b.category for b in bodies}),
        },
    )
    assert_invariants()


@pytest.mark.parametrize(
    "defect",
    [
        "lone-surrogate",
        "duplicate-keys",
        "trans-id-wrong-type",
        "non-ascii-digits",
    ],
)
def test_c2b_bodies_of_ambiguous_shape_are_stored_rejected_and_credit_nothing(
    live_server_proc: LiveServer, defect: str
) -> None:
    fleet_open_around_the_clock()
    bodies = c2b_defect_bodies(defect, accounts=ACCOUNTS, seed=62)
    answers = send_c2b(live_server_proc, bodies)
    assert_c2b_outcomes(bodies, answers)
    assert_invariants()


def submitted_payout() -> Payout:
    make_driver(1)
    payment_post(
        payment=IncomingPayment(trans_id="FZPO1", amount=Decimal("300"), account_reference="TUK001")
    )
    payout = Payout.objects.get()
    Payout.objects.filter(pk=payout.pk).update(
        state=PayoutState.SUBMITTED, conversation_id="AG_FZ_0001"
    )
    payout.refresh_from_db()
    return payout


def send_b2c(server: LiveServer, bodies: list[FuzzBody]) -> None:
    payout = submitted_payout()
    before = (payout.state, payout.receipt, payout.result_code, payout.result_desc)
    url = f"{server.url}/b2c/{server.token}/result"
    responses = post_all(
        [(url, b.body, b.content_type) for b in bodies], concurrency=scale().concurrency
    )
    for body, response in zip(bodies, responses, strict=True):
        what = (body.category, body.body[:80], response.status_code)
        assert response.status_code < 500, what
        if body.expect == REJECT:
            assert response.status_code in (400, 413), what
        else:
            assert response.status_code == 200, what
    results = Callback.objects.filter(kind=CallbackKind.B2C_RESULT)
    assert results.count() == len(bodies)  # every body stored
    assert results.filter(state=CallbackState.REJECTED).count() == sum(
        b.expect == REJECT for b in bodies
    )
    assert not results.filter(state__in=[CallbackState.RECEIVED, CallbackState.FAILED]).exists()
    payout.refresh_from_db()
    assert (payout.state, payout.receipt, payout.result_code, payout.result_desc) == before
    assert_invariants()


def test_fuzzed_b2c_results_never_5xx_all_stored_and_change_no_payout(
    live_server_proc: LiveServer,
) -> None:
    bodies = b2c_fuzz_bodies(max(10, scale().fuzz_bodies // 2), seed=63)
    send_b2c(live_server_proc, bodies)


def test_b2c_results_with_fields_of_the_wrong_type_are_stored_rejected(
    live_server_proc: LiveServer,
) -> None:
    send_b2c(live_server_proc, b2c_defect_bodies())
