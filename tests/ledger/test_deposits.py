"""Deposits (issue 10): self-payment by driver id, the deposit book and its database guard,
operator tools, target deductions at the day close, termination, refunds, restore."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
import time_machine
from django.db import DatabaseError, connection, connections, transaction

from tests.support.clock import nairobi
from tests.support.factories import make_driver, pay
from tests.support.faults import report
from tests.support.invariants import assert_invariants
from tests.support.live_server import LiveServer
from tests.support.payouts import payout_worker_kill
from tuktuk.core.errors import Conflict, InvalidInput, NotFound
from tuktuk.core.models import Event, EventTitle
from tuktuk.fleet.models import Driver
from tuktuk.ledger.adjustments import adjustment_add
from tuktuk.ledger.day_close import day_close_run
from tuktuk.ledger.deposit_book import deposit_balance
from tuktuk.ledger.deposits import (
    deduction_decide,
    deposit_add,
    deposit_deduct,
    deposit_settings_set,
)
from tuktuk.ledger.exits import (
    driver_archive,
    driver_misses_reset,
    driver_restore,
    driver_terminate,
    refund_reject,
    refunds_approve,
)
from tuktuk.ledger.models import (
    AdjustmentState,
    DayClose,
    Decision,
    DeductionProposal,
    DepositEntry,
    DepositEntryKind,
    DepositRefund,
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionType,
)
from tuktuk.ledger.services import PostingOutcome
from tuktuk.ledger.statement import driver_statement
from tuktuk.ledger.statement_csv import statement_csv
from tuktuk.payouts.models import Payout, PayoutKind, PayoutState

pytestmark = pytest.mark.django_db(transaction=True)
D = dt.date(2026, 3, 10)
DRV = "DRV-112001"


@pytest.fixture(autouse=True)
def ten_oclock() -> Iterator[None]:
    """Results depend on the business day: every test starts at 10:00 Nairobi on D."""
    with time_machine.travel(nairobi(2026, 3, 10, 10), tick=True):
        yield


def parts(trans_id: str) -> tuple[Decimal, Decimal, Decimal]:
    """(to target, to adjustments, to deposit) of a self-payment."""
    paid = Transaction.objects.get(trans_id=trans_id)
    to_adjustments = sum((a.amount for a in paid.repayment_allocations.all()), Decimal("0.00"))
    to_deposit = sum((e.amount for e in paid.deposit_entries.all()), Decimal("0.00"))
    return paid.target_contribution, to_adjustments, to_deposit


# Self-payment -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("already", "amount", "expected"),
    [
        ("0", "1000", ("1000.00", "0.00", "0.00")),  # exactly the shortfall
        ("0", "1500", ("1000.00", "0.00", "500.00")),  # more: the rest tops up the deposit
        ("0", "400", ("400.00", "0.00", "0.00")),  # less: all of it to the target
        ("1000", "300", ("0.00", "0.00", "300.00")),  # target already met: all to the deposit
        ("600", "700", ("400.00", "0.00", "300.00")),  # part of the day already paid by fares
    ],
)
def test_self_payment_covers_the_shortfall_then_the_deposit(
    already: str, amount: str, expected: tuple[str, str, str]
) -> None:
    make_driver(1, daily_target=Decimal("1000"))
    if already != "0":
        pay("FARE", str(Decimal(already) * 2))  # 50 % share: contributes `already`
    result = pay("SELF", amount, account=DRV)
    assert result.outcome is PostingOutcome.SELF_PAYMENT
    assert parts("SELF") == tuple(Decimal(x) for x in expected)
    paid = result.transaction
    assert paid.transaction_type == TransactionType.SELF_PAYMENT and paid.driver_share == 0
    assert not Payout.objects.filter(transaction=paid).exists()  # never a fare: no B2C
    entry = LedgerEntry.objects.get(transaction=paid)
    assert (entry.kind, entry.amount) == (EntryKind.CONTRIBUTION, Decimal(expected[0]))
    driver = Driver.objects.get(driver_id=DRV)
    assert driver.current_balance == Decimal(already) + Decimal(expected[0])
    assert deposit_balance(driver_pk=driver.pk) == Decimal(expected[2])
    event = Event.objects.get(title=EventTitle.SELF_PAYMENT_RECEIVED)
    assert event.data["to_deposit"] == expected[2]
    assert_invariants()


def test_self_payment_settles_open_adjustments_oldest_first_before_the_deposit() -> None:
    make_driver(1, daily_target=Decimal("1000"))
    older = adjustment_add(driver_id=DRV, amount="200", reason="fuel", actor="m")
    newer = adjustment_add(driver_id=DRV, amount="300", reason="tyre", actor="m")
    pay("SELF", "1400", account=DRV)
    assert parts("SELF") == (Decimal("1000.00"), Decimal("400.00"), Decimal("0.00"))
    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.state == AdjustmentState.SETTLED
    assert (newer.state, newer.repaid) == (AdjustmentState.OPEN, Decimal("200.00"))
    pay("SELF2", "250", account=DRV)  # target met: 100 settles the rest, 150 to the deposit
    assert parts("SELF2") == (Decimal("0.00"), Decimal("100.00"), Decimal("150.00"))
    assert_invariants()


def test_self_payment_by_the_legacy_alias_and_its_duplicate_credit_once() -> None:
    driver = make_driver(1, daily_target=Decimal("100"))
    driver.account_alias = " d112001 "
    driver.save()
    assert Driver.objects.get(pk=driver.pk).account_alias == "D112001"
    assert pay("ALIAS", "300", account="d112001").outcome is PostingOutcome.SELF_PAYMENT
    assert pay("ALIAS", "300", account="d112001").outcome is PostingOutcome.DUPLICATE
    assert parts("ALIAS") == (Decimal("100.00"), Decimal("0.00"), Decimal("200.00"))
    assert DepositEntry.objects.count() == 1
    assert_invariants()


def test_a_terminated_drivers_id_is_no_self_payment() -> None:
    make_driver(1)
    driver_terminate(driver_id=DRV, reason="left", actor="m")
    assert pay("GONE", "300", account=DRV).outcome is PostingOutcome.UNMATCHED


def _race(jobs: list[Callable[[], object]]) -> list[BaseException]:
    """Run the jobs in threads released together; each closes its own connection."""
    start = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            start.wait()
            job()
        except BaseException as exc:  # reported to the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors


def test_concurrent_self_payments_and_fares_for_one_driver_add_up_exactly() -> None:
    make_driver(1, daily_target=Decimal("1000"))
    jobs: list[Callable[[], object]] = []
    for i in range(8):
        jobs.append(lambda i=i: pay(f"F{i}", "200"))  # 50 %: 100 each to the target
        jobs.append(lambda i=i: pay(f"S{i}", "150", account=DRV))
        jobs.append(lambda i=i: pay(f"S{i}", "150", account=DRV))  # duplicate delivery
    assert _race(jobs) == []
    driver = Driver.objects.get(driver_id=DRV)
    selfs = Transaction.objects.filter(transaction_type=TransactionType.SELF_PAYMENT)
    assert selfs.count() == 8
    to_target = sum(t.target_contribution for t in selfs)
    fares = Transaction.objects.filter(transaction_type=TransactionType.PAYMENT)
    assert driver.current_balance == to_target + sum(t.target_contribution for t in fares)
    # Every shilling went somewhere exactly once: 8 x 150 = target part + deposit.
    assert to_target + deposit_balance(driver_pk=driver.pk) == Decimal("1200.00")
    assert_invariants()


# The deposit book and its database guard ---------------------------------------------------


def test_operator_tools_move_the_deposit_with_a_reason_and_an_actor() -> None:
    make_driver(1)
    deposit_add(driver_id=DRV, amount="5000", kind="initial", reason="cash at signing", actor="m")
    deposit_add(driver_id=DRV, amount="500", reason="cash", actor="m")
    deposit_deduct(driver_id=DRV, amount="1200", kind="damage", reason="mirror", actor="m")
    deposit_deduct(driver_id=DRV, amount="0.50", kind="adjustment", reason="rounding", actor="m")
    entries = list(DepositEntry.objects.order_by("seq"))
    assert [(e.kind, e.amount, e.balance_after, e.actor) for e in entries] == [
        (DepositEntryKind.INITIAL, Decimal("5000.00"), Decimal("5000.00"), "m"),
        (DepositEntryKind.TOP_UP, Decimal("500.00"), Decimal("5500.00"), "m"),
        (DepositEntryKind.DAMAGE_DEDUCTION, Decimal("-1200.00"), Decimal("4300.00"), "m"),
        (DepositEntryKind.ADJUSTMENT, Decimal("-0.50"), Decimal("4299.50"), "m"),
    ]
    assert entries[2].reference == "mirror"
    assert Event.objects.filter(title=EventTitle.DEPOSIT_DEDUCTED, actor="m").count() == 2
    assert_invariants()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: deposit_add(driver_id=DRV, amount="-5", reason="x", actor="m"), InvalidInput,
         "positive"),
        (lambda: deposit_add(driver_id=DRV, amount="abc", reason="x", actor="m"), InvalidInput,
         "not a number"),
        (lambda: deposit_add(driver_id=DRV, amount="1.005", reason="x", actor="m"), InvalidInput,
         "2 decimals"),
        (lambda: deposit_add(driver_id=DRV, amount="5", reason=" ", actor="m"), InvalidInput,
         "reason"),
        (lambda: deposit_add(driver_id=DRV, amount="5", kind="refund", reason="x", actor="m"),
         InvalidInput, "type"),
        (lambda: deposit_add(driver_id="DRV-999999", amount="5", reason="x", actor="m"),
         NotFound, "no driver"),
        (lambda: deposit_deduct(driver_id=DRV, amount="100.01", reason="x", actor="m"),
         InvalidInput, "more than the deposit balance of 100"),
    ],
)  # fmt: skip
def test_bad_operator_input_is_refused_and_changes_nothing(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    make_driver(1)
    deposit_add(driver_id=DRV, amount="100", reason="cash", actor="m")
    with pytest.raises(error, match=match):
        call()
    assert list(DepositEntry.objects.values_list("balance_after", flat=True)) == [Decimal("100")]


def _insert_entry(driver_pk: int, seq: int, amount: str, after: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_depositentry (driver_id, seq, kind, amount, balance_after,"
            " reference, actor, created_at) VALUES (%s, %s, %s, %s, %s, 'sql', '', %s)",
            [driver_pk, seq, "Top Up", Decimal(amount), Decimal(after), "2026-03-10 07:00:00"],
        )


def test_the_database_keeps_the_deposit_equal_to_the_sum_of_its_entries() -> None:
    driver = make_driver(1)
    deposit_add(driver_id=DRV, amount="100", reason="cash", actor="m")
    _insert_entry(driver.pk, 2, "50", "150")  # follows the chain: accepted
    for seq, amount, after in [("3", "50", "999"), ("5", "50", "200"), ("2", "50", "200")]:
        with pytest.raises(DatabaseError), transaction.atomic():
            _insert_entry(driver.pk, int(seq), amount, after)
    with pytest.raises(DatabaseError), transaction.atomic():  # below zero
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO ledger_depositentry (driver_id, seq, kind, amount, balance_after,"
                " reference, actor, created_at) VALUES (%s, 3, 'Damage Deduction', -200, -50,"
                " 'sql', '', '2026-03-10 07:00:00')",
                [driver.pk],
            )
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_depositentry SET amount = 1000, balance_after = 1000")
    assert deposit_balance(driver_pk=driver.pk) == Decimal("150.00")


def test_control_a_stale_read_of_the_deposit_would_lose_a_movement_and_the_database_refuses_it(
) -> None:  # fmt: skip
    """The race the driver lock prevents: two movements read the same last entry. Without the
    lock the second would write a balance that ignores the first; the chain trigger (with the
    unique seq) refuses it, so even code that forgets the lock cannot lose money."""
    driver = make_driver(1)
    deposit_add(driver_id=DRV, amount="100", reason="cash", actor="m")
    stale_seq, stale_balance = 1, Decimal("100")  # what both movements read
    _insert_entry(driver.pk, stale_seq + 1, "50", str(stale_balance + 50))  # the first commits
    with pytest.raises(DatabaseError), transaction.atomic():  # the second, on its stale read
        _insert_entry(driver.pk, stale_seq + 1, "30", str(stale_balance + 30))
    with pytest.raises(DatabaseError), transaction.atomic():  # even with a fresh seq
        _insert_entry(driver.pk, stale_seq + 2, "30", str(stale_balance + 30))
    assert deposit_balance(driver_pk=driver.pk) == Decimal("150.00")


# Target deductions at the day close --------------------------------------------------------


def _missed_day(*, allow: bool = True, deposit: str = "5000") -> Driver:
    driver = make_driver(1, daily_target=Decimal("1000"))
    deposit_add(driver_id=DRV, amount=deposit, kind="initial", reason="signing", actor="m")
    deposit_settings_set(driver_id=DRV, actor="m", allow_target_deduction=allow)
    pay("FARE", "600")  # 300 to the target: 700 short
    with time_machine.travel(nairobi(2026, 3, 11, 0, 5), tick=False):
        day_close_run()
    return driver


def test_a_miss_proposes_a_deduction_and_approving_it_reduces_the_carried_debt() -> None:
    driver = _missed_day()
    proposal = DeductionProposal.objects.get()
    assert (proposal.business_day, proposal.shortfall, proposal.amount) == (
        D,
        Decimal("700.00"),
        Decimal("700.00"),
    )
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("-700.00")  # the carried debt
    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=True):
        decided = deduction_decide(proposal_id=proposal.pk, approve=True, actor="boss")
        with pytest.raises(Conflict, match="already approved"):
            deduction_decide(proposal_id=proposal.pk, approve=True, actor="boss")
    assert (decided.state, decided.approved_amount, decided.decided_by) == (
        Decision.APPROVED,
        Decimal("700.00"),
        "boss",
    )
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("0.00")  # the debt reduced by exactly 700
    assert deposit_balance(driver_pk=driver.pk) == Decimal("4300.00")
    moved = LedgerEntry.objects.get(kind=EntryKind.DEPOSIT)
    assert (moved.amount, moved.business_day) == (Decimal("700.00"), D + dt.timedelta(days=1))
    assert DepositEntry.objects.filter(kind=DepositEntryKind.TARGET_DEDUCTION).get().amount == -700
    assert Event.objects.filter(title=EventTitle.DEDUCTION_APPROVED, actor="boss").exists()
    assert_invariants()


def test_no_proposal_without_consent_and_up_to_the_deposit_only() -> None:
    _missed_day(allow=False)
    assert not DeductionProposal.objects.exists()


def test_a_proposal_is_capped_at_the_deposit_and_can_be_rejected_with_a_reason() -> None:
    _missed_day(deposit="250")
    proposal = DeductionProposal.objects.get()
    assert proposal.amount == Decimal("250.00")
    with pytest.raises(InvalidInput, match="reason"):
        deduction_decide(proposal_id=proposal.pk, approve=False, actor="boss")
    rejected = deduction_decide(proposal_id=proposal.pk, approve=False, actor="b", reason="no")
    assert rejected.state == Decision.REJECTED
    assert deposit_balance(driver_pk=proposal.driver_id) == Decimal("250.00")


def test_deduction_approval_racing_payments_loses_nothing() -> None:
    driver = _missed_day()
    proposal = DeductionProposal.objects.get()
    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=True):
        jobs: list[Callable[[], object]] = [
            lambda: deduction_decide(proposal_id=proposal.pk, approve=True, actor="boss")
        ]
        jobs += [lambda i=i: pay(f"R{i}", "100") for i in range(6)]
        jobs += [lambda: deposit_deduct(driver_id=DRV, amount="4000", reason="crash", actor="m")]
        assert _race(jobs) == []
    driver.refresh_from_db()
    # -700 carried + 700 from the deposit + 6 fares x 50 to the target.
    assert driver.current_balance == Decimal("300.00")
    assert deposit_balance(driver_pk=driver.pk) == Decimal("300.00")
    assert_invariants()


# Termination, refunds, archive, restore ----------------------------------------------------


def test_termination_frees_the_vehicle_and_its_payments_stay_uncaptured() -> None:
    make_driver(1)
    refund = driver_terminate(driver_id=DRV, reason="left the fleet", actor="m")
    driver = Driver.objects.get(driver_id=DRV)
    assert (driver.is_active, driver.vehicle, driver.status) == (False, None, "terminated")
    assert refund.state == Decision.PROPOSED
    assert pay("AFTER", "300").outcome is PostingOutcome.UNMATCHED
    with pytest.raises(Conflict, match="already terminated"):
        driver_terminate(driver_id=DRV, reason="again", actor="m")


def test_refund_is_the_deposit_minus_carried_debt_and_adjustments_paid_once() -> None:
    driver = _missed_day(allow=False, deposit="2000.75")  # carries 700 of debt
    adjustment_add(driver_id=DRV, amount="250", reason="fuel", actor="m")
    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=True):
        proposed = driver_terminate(driver_id=DRV, reason="left", actor="m")
        assert (proposed.target_debt, proposed.adjustments_debt, proposed.amount) == (
            Decimal("700.00"),
            Decimal("250.00"),
            Decimal("1050.00"),  # whole shillings: the 0.75 stays in the deposit
        )
        [decision] = refunds_approve(refund_ids=[proposed.pk], actor="boss")
        [again] = refunds_approve(refund_ids=[proposed.pk], actor="boss")
    assert decision.refund is not None and decision.refund.amount == Decimal("1050.00")
    assert again.refund is None and "already approved" in again.error
    payout = Payout.objects.get(kind=PayoutKind.REFUND)
    assert (payout.amount, payout.state, payout.refund_id) == (
        Decimal("1050.00"),
        PayoutState.PENDING,
        proposed.pk,
    )
    assert payout.originator_conversation_id == f"TTL-REFUND-{DRV}-{proposed.pk}"
    driver.refresh_from_db()
    assert driver.current_balance == Decimal("0.00")  # the carried debt paid from the deposit
    assert deposit_balance(driver_pk=driver.pk) == Decimal("0.75")
    kinds = list(DepositEntry.objects.order_by("seq").values_list("kind", "amount"))
    assert kinds[1:] == [
        (DepositEntryKind.TARGET_DEDUCTION, Decimal("-700.00")),
        (DepositEntryKind.ADJUSTMENT, Decimal("-250.00")),
        (DepositEntryKind.REFUND, Decimal("-1050.00")),
    ]
    settled = Transaction.objects.get(trans_id=f"DEP-REFUND-{proposed.pk}")
    assert settled.transaction_type == TransactionType.DRIVER_REPAYMENT
    assert settled.repayment_allocations.get().amount == Decimal("250.00")
    assert_invariants()


def test_a_debt_larger_than_the_deposit_reduces_the_refund_to_zero() -> None:
    _missed_day(allow=False, deposit="300")  # 700 of debt against 300 of deposit
    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=True):
        proposed = driver_terminate(driver_id=DRV, reason="left", actor="m")
        assert proposed.amount == 0
        [decision] = refunds_approve(refund_ids=[proposed.pk], actor="boss")
    assert decision.refund is not None and decision.refund.amount == 0
    assert not Payout.objects.filter(kind=PayoutKind.REFUND).exists()
    assert deposit_balance(driver_pk=proposed.driver_id) == Decimal("0.00")
    assert Driver.objects.get(driver_id=DRV).current_balance == Decimal("-400.00")
    assert_invariants()


def test_bulk_refunds_report_each_and_a_rejected_one_pays_nothing() -> None:
    ids = []
    for n in (1, 2, 3):
        make_driver(n)
        deposit_add(driver_id=f"DRV-11200{n}", amount="1000", reason="cash", actor="m")
        ids.append(driver_terminate(driver_id=f"DRV-11200{n}", reason="left", actor="m").pk)
    refund_reject(refund_id=ids[2], reason="keeps the deposit for damage", actor="boss")
    decisions = refunds_approve(refund_ids=[*ids, 999999], actor="boss")
    assert [bool(d.refund) for d in decisions] == [True, True, False, False]
    assert "already rejected" in decisions[2].error and "no refund" in decisions[3].error
    assert Payout.objects.filter(kind=PayoutKind.REFUND).count() == 2
    assert_invariants()


def test_archive_and_restore_keep_the_balances_and_pause_the_days_away() -> None:
    driver = _missed_day(allow=False)  # -700 carried into D+1, one miss
    deposit_deduct(driver_id=DRV, amount="100", reason="mirror", actor="m")
    with pytest.raises(Conflict, match="only a terminated driver"):
        driver_archive(driver_id=DRV, actor="m")
    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=True):
        refund = driver_terminate(driver_id=DRV, reason="left", actor="m")
        assert driver_archive(driver_id=DRV, actor="m").status == "archived"
    with time_machine.travel(nairobi(2026, 3, 14, 9), tick=True):
        restored = driver_restore(driver_id=DRV, reason="came back", actor="m")
    assert (restored.status, restored.is_active) == ("active", True)
    assert restored.balance_day == dt.date(2026, 3, 14)
    assert restored.current_balance == Decimal("-700.00")  # what they left with
    assert restored.consecutive_misses == 1  # days away are no misses
    paused = DayClose.objects.filter(paused=True).order_by("business_day")
    assert [c.business_day for c in paused] == [dt.date(2026, 3, d) for d in (11, 12, 13)]
    assert deposit_balance(driver_pk=driver.pk) == Decimal("4900.00")
    refund.refresh_from_db()
    assert refund.state == Decision.REJECTED  # withdrawn: nothing to refund to a driver back
    assert_invariants()


def test_reset_misses_records_the_reason_and_the_previous_count() -> None:
    make_driver(1, consecutive_misses=3, flagged_for_review=True)
    reset = driver_misses_reset(driver_id=DRV, reason="medical leave", actor="boss")
    assert (reset.consecutive_misses, reset.flagged_for_review) == (0, False)
    event = Event.objects.get(title=EventTitle.MISSES_RESET)
    assert (event.actor, event.data["previous_misses"]) == ("boss", 3)
    assert "medical leave" in event.message


# A refund is paid exactly once even when the worker is killed mid-batch --------------------


def _refund_payouts(count: int) -> None:
    for n in range(1, count + 1):
        make_driver(n)
        deposit_add(driver_id=f"DRV-{112000 + n}", amount=f"{100 * n}", reason="c", actor="m")
        driver_terminate(driver_id=f"DRV-{112000 + n}", reason="left", actor="m")
    proposed = DepositRefund.objects.filter(state=Decision.PROPOSED)
    refunds_approve(refund_ids=list(proposed.values_list("pk", flat=True)), actor="boss")


def test_refunds_are_paid_exactly_once_with_a_killed_worker(live_server_proc: LiveServer) -> None:
    counts = payout_worker_kill(live_server_proc, payouts=6, kills=1, make=_refund_payouts)
    report("refund-worker-kill", counts)
    assert counts["lost"] == 0 and counts["double_paid"] == 0
    assert Payout.objects.filter(kind=PayoutKind.REFUND, state=PayoutState.COMPLETED).count() == 6
    assert_invariants()


def test_the_statement_shows_each_part_and_the_deposit_moves_without_problems() -> None:
    _missed_day()  # D: 300 to the target, 700 short; D+1 opens at -700
    adjustment_add(driver_id=DRV, amount="100", reason="fuel", actor="m")
    with time_machine.travel(nairobi(2026, 3, 11, 9), tick=True):
        deduction_decide(proposal_id=DeductionProposal.objects.get().pk, approve=True, actor="boss")
        pay("SELF", "1500", account=DRV)  # 1000 to the target, 100 to fuel, 400 to the deposit
        statement = driver_statement(driver_id=DRV, date_from=D, date_to=D + dt.timedelta(days=1))
        csv_text = statement_csv(statement)
    assert statement.problems == []
    [paid] = [tx for tx in statement.transactions if tx.trans_id == "SELF"]
    assert (paid.target_contribution, paid.to_adjustments, paid.to_deposit) == (
        Decimal("1000.00"),
        Decimal("100.00"),
        Decimal("400.00"),
    )
    day = statement.days[1]
    assert (day.opening, day.from_deposit, day.contributions, day.closing) == (
        Decimal("-700.00"),
        Decimal("700.00"),
        Decimal("1000.00"),
        Decimal("1000.00"),
    )
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    self_row = next(r for r in rows if r["reference"] == "SELF")
    assert "to adjustments 100.00, to deposit 400.00" in self_row["detail"]
    assert any(r["kind"] == "deposit" and r["amount"] == "700.00" for r in rows)
    changes = sum(Decimal(r["balance_change"]) for r in rows if r["kind"] != "total")
    assert changes == statement.closing_balance == Decimal("1000.00")


def test_an_alias_cannot_be_a_vehicles_account_or_a_driver_id() -> None:
    from django.core.exceptions import ValidationError

    driver = make_driver(1)
    make_driver(2)
    for alias, match in (("tuk002", "vehicle's account"), ("DRV-112002", "driver id")):
        driver.account_alias = alias
        with pytest.raises(ValidationError, match=match):
            driver.full_clean()
    driver.account_alias = "D112001"
    driver.full_clean()
    driver.save()
    vehicle = Driver.objects.get(driver_id="DRV-112002").vehicle
    assert vehicle is not None
    vehicle.mpesa_account = "d112001"
    with pytest.raises(ValidationError, match="driver's own account"):
        vehicle.full_clean()
