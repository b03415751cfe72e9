"""What the portal shows a driver, built on the ledger's own reads (the statement, the deposit)
so the portal can never disagree with what operators see; and the problem reports for
operators (the dashboard's count)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q
from django.utils import timezone

from tuktuk.backoffice.portal.models import ProblemReport, ProblemState
from tuktuk.core.errors import NotFound
from tuktuk.core.money import ZERO, money
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.day_close import current_business_day
from tuktuk.ledger.deposits import DepositView, deposit_show
from tuktuk.ledger.models import Transaction, TransactionStatus, TransactionType
from tuktuk.ledger.selectors import DayState
from tuktuk.ledger.statement import Statement, StatementTransaction, driver_statement
from tuktuk.payouts.models import PayoutState

# How a driver reads a payout's state.
PAID, PENDING, HELD, ATTENTION, NO_SHARE = "paid", "pending", "held", "needs attention", "no share"
_PAYOUT_WORDS = {
    PayoutState.COMPLETED: PAID,
    PayoutState.PENDING: PENDING,
    PayoutState.SENDING: PENDING,
    PayoutState.SUBMITTED: PENDING,
    PayoutState.HELD: HELD,
    PayoutState.FAILED: ATTENTION,
    PayoutState.UNKNOWN: ATTENTION,
}
PAYOUT_EXPLAINED = {
    PAID: "sent to your M-Pesa",
    PENDING: "on its way to your M-Pesa",
    HELD: "kept by the fleet until it releases payouts",
    ATTENTION: "the fleet is looking into it",
    NO_SHARE: "all of it counted toward your target",
}


def payer_masked(msisdn: str, name: str) -> str:
    """`254712345678`, `John Doe` → `John 2547•••••678`: enough to recognise a passenger."""
    digits = "".join(c for c in msisdn if c.isdigit())
    number = f"{digits[:4]}•••••{digits[-3:]}" if len(digits) >= 7 else ("•••" if msisdn else "")
    first = name.split()[0] if name.strip() else ""
    return " ".join(part for part in (first, number) if part)


@dataclass(frozen=True)
class FareLine:
    trans_id: str
    received_at: dt.datetime
    business_day: dt.date | None
    kind: str
    amount: Decimal
    payer: str
    driver_share: Decimal
    target_contribution: Decimal
    payout: str  # paid, pending, held, needs attention, no share
    payout_explained: str
    payout_receipt: str


def fare_line(tx: StatementTransaction) -> FareLine:
    if tx.payout_state:
        payout = _PAYOUT_WORDS.get(PayoutState(tx.payout_state), ATTENTION)
    else:
        payout = NO_SHARE
    return FareLine(
        trans_id=tx.trans_id,
        received_at=tx.received_at,
        business_day=tx.business_day,
        kind=tx.transaction_type,
        amount=tx.amount,
        payer=payer_masked(tx.payer_msisdn, tx.payer_name),
        driver_share=tx.driver_share,
        target_contribution=tx.target_contribution,
        payout=payout,
        payout_explained=PAYOUT_EXPLAINED[payout],
        payout_receipt=tx.payout_receipt or "" if payout == PAID else "",
    )


def _is_money_in(tx: StatementTransaction) -> bool:
    return tx.status == TransactionStatus.COMPLETED and tx.transaction_type in (
        TransactionType.PAYMENT,
        TransactionType.SELF_PAYMENT,
        TransactionType.DRIVER_REPAYMENT,
    )


@dataclass(frozen=True)
class TodayView:
    driver_id: str
    name: str
    vehicle: str
    business_day: dt.date
    is_current_day: bool  # False: the day shown has not been closed yet (it is after midnight)
    target: Decimal
    opening: Decimal  # negative: debt carried over from the day before
    balance: Decimal
    left_to_target: Decimal
    debt_explained: str
    fares: list[FareLine]
    received: Decimal
    share: Decimal
    paid: Decimal
    waiting: Decimal
    problems: int  # the driver's reports still open

    @property
    def target_met(self) -> bool:
        return self.left_to_target <= 0


def _debt_words(*, opening: Decimal, target: Decimal, day: dt.date, sharing: bool) -> str:
    previous = (day - dt.timedelta(days=1)).strftime("%A %d %B")
    if opening < 0:
        owed = -opening
        return (
            f"You started today owing KES {owed:,.2f}: on {previous} you were KES {owed:,.2f} "
            f"short of your target, and that is carried over. Your fares pay it back first, "
            f"so you need KES {target + owed:,.2f} in contributions today to reach today's "
            f"KES {target:,.2f} target."
        )
    if not sharing:
        return "Nothing is carried over: your day starts at zero."
    return "You started today at zero: nothing carried over from yesterday."


def portal_today(*, driver: Driver) -> TodayView:
    """The driver's open business day: target, balance, left to target, the fares so far."""
    fleet = FleetSettings.load()
    statement = driver_statement(driver_id=driver.driver_id)
    day = statement.days[-1]
    target = money(driver.effective_target(fleet))
    balance = day.cached_balance if day.cached_balance is not None else day.closing
    fares = [fare_line(tx) for tx in reversed(statement.transactions) if _is_money_in(tx)]
    lines_with_share = [f for f in fares if f.driver_share > 0]
    return TodayView(
        driver_id=driver.driver_id,
        name=driver.name,
        vehicle=driver.vehicle.vehicle_id if driver.vehicle else "",
        business_day=day.business_day,
        is_current_day=day.business_day >= current_business_day(fleet),
        target=target,
        opening=day.opening,
        balance=money(balance),
        left_to_target=max(ZERO, target - money(balance)),
        debt_explained=_debt_words(
            opening=day.opening,
            target=target,
            day=day.business_day,
            sharing=driver.effective_sharing(fleet),
        ),
        fares=fares,
        received=sum((f.amount for f in fares), ZERO),
        share=sum((f.driver_share for f in fares), ZERO),
        paid=sum((f.driver_share for f in lines_with_share if f.payout == PAID), ZERO),
        waiting=sum((f.driver_share for f in lines_with_share if f.payout != PAID), ZERO),
        problems=ProblemReport.objects.filter(driver=driver, state=ProblemState.OPEN).count(),
    )


def portal_fare(*, driver: Driver, trans_id: str) -> FareLine:
    """One of the driver's own fares (NotFound for anyone else's: the same answer as for a
    TransID that does not exist)."""
    tx = Transaction.objects.filter(driver=driver, trans_id=trans_id).only("business_day").first()
    if tx is None or tx.business_day is None:
        raise NotFound("no such fare")
    statement = driver_statement(
        driver_id=driver.driver_id, date_from=tx.business_day, date_to=tx.business_day
    )
    for line in statement.transactions:
        if line.trans_id == trans_id:
            return fare_line(line)
    raise NotFound("no such fare")


def portal_deposit(*, driver: Driver) -> DepositView:
    return deposit_show(driver_id=driver.driver_id)


def portal_statement(
    *, driver: Driver, date_from: dt.date | str | None, date_to: dt.date | str | None
) -> Statement:
    return driver_statement(driver_id=driver.driver_id, date_from=date_from, date_to=date_to)


def statement_day_label(state: DayState) -> str:
    return {
        DayState.CLOSED: "closed",
        DayState.OPEN: "today so far",
        DayState.PENDING: "not closed yet",
        DayState.NOT_RECORDED: "no balance yet",
    }.get(state, str(state))


# For operators (and the dashboard of issue 13) --------------------------------------------------


@dataclass(frozen=True)
class ProblemReportRow:
    id: int
    driver_id: str
    name: str
    note: str
    trans_id: str
    business_day: dt.date
    balance_shown: Decimal
    created_at: dt.datetime


@dataclass(frozen=True)
class ProblemReportSummary:
    open: int
    opened_today: int
    oldest_open: dt.datetime | None
    latest: list[ProblemReportRow]


def problem_reports_summary(*, limit: int = 10) -> ProblemReportSummary:
    """The open problem reports: how many, and the latest ones."""
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    counts = ProblemReport.objects.filter(state=ProblemState.OPEN).aggregate(
        open=Count("id"), today=Count("id", filter=Q(created_at__gte=start_of_day))
    )
    rows = (
        ProblemReport.objects.filter(state=ProblemState.OPEN)
        .select_related("driver")
        .order_by("-created_at", "-id")
    )
    oldest = rows.order_by("created_at").values_list("created_at", flat=True).first()
    return ProblemReportSummary(
        open=counts["open"],
        opened_today=counts["today"],
        oldest_open=oldest,
        latest=[
            ProblemReportRow(
                id=r.pk,
                driver_id=r.driver.driver_id,
                name=r.driver.name,
                note=r.note,
                trans_id=r.trans_id,
                business_day=r.business_day,
                balance_shown=r.balance_shown,
                created_at=r.created_at,
            )
            for r in rows[:limit]
        ],
    )


def problem_reports_open_count() -> int:
    return ProblemReport.objects.filter(state=ProblemState.OPEN).count()
