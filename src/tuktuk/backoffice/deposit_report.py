"""The deposit report: per driver, the deposit settings, the balance and what made it.

One row per driver (every status, archived included: money can stay in an archived driver's
deposit, e.g. the cents a whole-shilling refund leaves). Totals are positive amounts:

- top_ups = Initial Deposit + Top Up + positive Adjustment entries;
- deductions = Target Deduction + Damage Deduction + negative Adjustment entries (the open
  adjustments a refund settles from the deposit are negative Adjustments);
- refunds = Refund entries (paid by M-Pesa B2C);

so balance = top_ups − deductions − refunds, the balance being the last entry's balance_after
(the database keeps it equal to the sum of the entries). Three queries whatever the number of
drivers: the drivers with their settings and balance, the entry totals, the open proposals.

CSV (`deposit_report_csv`): UTF-8, a header row (CSV_HEADER), CRLF line ends (the csv
module's), amounts as plain numbers with two decimals, booleans as yes/no.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum

from tuktuk.backoffice.selectors import driver_status
from tuktuk.core.money import ZERO, money
from tuktuk.fleet.models import Driver
from tuktuk.ledger.deposit_book import deposit_balance_subquery
from tuktuk.ledger.models import Decision, DeductionProposal, DepositEntry, DepositEntryKind

CSV_HEADER = [
    "driver_id",
    "name",
    "status",
    "required",
    "initial_amount",
    "balance",
    "top_ups",
    "deductions",
    "refunds",
    "open_proposals",
]

_TOP_UPS = Q(kind__in=[DepositEntryKind.INITIAL, DepositEntryKind.TOP_UP]) | Q(
    kind=DepositEntryKind.ADJUSTMENT, amount__gt=0
)
_DEDUCTIONS = Q(
    kind__in=[DepositEntryKind.TARGET_DEDUCTION, DepositEntryKind.DAMAGE_DEDUCTION]
) | Q(kind=DepositEntryKind.ADJUSTMENT, amount__lt=0)
_REFUNDS = Q(kind=DepositEntryKind.REFUND)


@dataclass(frozen=True)
class DepositReportRow:
    driver_id: str
    name: str
    status: str
    required: bool
    initial_amount: Decimal
    balance: Decimal
    top_ups: Decimal
    deductions: Decimal
    refunds: Decimal
    open_proposals: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DepositReport:
    rows: list[DepositReportRow]

    @property
    def totals(self) -> dict[str, Any]:
        return {
            "balance": sum((row.balance for row in self.rows), ZERO),
            "top_ups": sum((row.top_ups for row in self.rows), ZERO),
            "deductions": sum((row.deductions for row in self.rows), ZERO),
            "refunds": sum((row.refunds for row in self.rows), ZERO),
            "open_proposals": sum(row.open_proposals for row in self.rows),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": len(self.rows),
            "totals": self.totals,
            "items": [row.as_dict() for row in self.rows],
        }


def deposit_report() -> DepositReport:
    drivers = (
        Driver.objects.order_by("driver_id")
        .annotate(balance=deposit_balance_subquery())
        .values(
            "pk",
            "driver_id",
            "name",
            "is_active",
            "terminated_at",
            "archived_at",
            "balance",
            "deposit__required",
            "deposit__initial_amount",
        )
    )
    totals: dict[int, dict[str, Any]] = {
        row["driver_id"]: dict(row)
        for row in DepositEntry.objects.order_by()
        .values("driver_id")
        .annotate(
            top_ups=Sum("amount", filter=_TOP_UPS),
            deductions=Sum("amount", filter=_DEDUCTIONS),
            refunds=Sum("amount", filter=_REFUNDS),
        )
    }
    proposals = dict(
        DeductionProposal.objects.filter(state=Decision.PROPOSED)
        .order_by()
        .values("driver_id")
        .annotate(open=Count("pk"))
        .values_list("driver_id", "open")
    )
    rows = []
    for driver in drivers:
        sums = totals.get(driver["pk"], {})
        rows.append(
            DepositReportRow(
                driver_id=driver["driver_id"],
                name=driver["name"],
                status=driver_status(driver),
                required=bool(driver["deposit__required"]),
                initial_amount=money(driver["deposit__initial_amount"] or ZERO),
                balance=money(driver["balance"]),
                top_ups=money(sums.get("top_ups") or ZERO),
                # Stored signed (negative); reported as the amounts that left the deposit.
                # (ZERO - x, not -x: no "-0.00" for a driver without deductions.)
                deductions=money(ZERO - (sums.get("deductions") or ZERO)),
                refunds=money(ZERO - (sums.get("refunds") or ZERO)),
                open_proposals=proposals.get(driver["pk"], 0),
            )
        )
    return DepositReport(rows=rows)


def _money_text(value: Decimal) -> str:
    return format(money(value), "f")  # never an exponent ("0E-2")


def deposit_report_csv(report: DepositReport) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_HEADER)  # CRLF line ends by default
    writer.writeheader()
    for row in report.rows:
        writer.writerow(
            {
                "driver_id": row.driver_id,
                "name": row.name,
                "status": row.status,
                "required": "yes" if row.required else "no",
                "initial_amount": _money_text(row.initial_amount),
                "balance": _money_text(row.balance),
                "top_ups": _money_text(row.top_ups),
                "deductions": _money_text(row.deductions),
                "refunds": _money_text(row.refunds),
                "open_proposals": row.open_proposals,
            }
        )
    return buffer.getvalue()


DEPOSIT_REPORT_CSV_FILENAME = "deposit-report.csv"
