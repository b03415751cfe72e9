"""The legacy reconciliation tools, by name, arguments and JSON keys, built in this one place
from the ledger's typed results and used by the CLI, the JSON API, the admin and the worker.

`reconcile_driver_balance`, `fix_driver_balance` and `reconcile_all_drivers_balances` answer
with the legacy keys (driver_name, driver, old_balance, calculated_balance, discrepancy,
transactions_count, from_datetime, reconciled, message, …) and the legacy emoji messages, and
add business_day, day_state, opening_balance, problems (money problems only) and information
(harmless findings, such as a TransID delivered twice and posted once).

The `frappe_*` functions at the end answer the legacy app's own HTTP calls
(`/api/method/tuktuk_management.api.tuktuk.*`, backoffice.frappe) key for key: the legacy
no-op answer of a fix, every checked driver in a mass check's results, the adjustment's sign in
the message, `{"success": false, "error": …}` for what the legacy call reported as a failure,
and a word in the message wherever TukTuk Ledger's answer means something else.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone

from tuktuk.core.dates import day_parse
from tuktuk.core.money import format_ksh
from tuktuk.fleet.models import FleetSettings
from tuktuk.fleet.selectors import driver_get
from tuktuk.ledger.business_day import day_open_moment
from tuktuk.ledger.payment_status import Finding
from tuktuk.ledger.reconciliation import (
    BalanceFix,
    DriverReconciliation,
    MassReconciliation,
    driver_balance_check,
    driver_balance_fix,
    drivers_balance_reconcile,
)
from tuktuk.ledger.selectors import BalanceSnapshot, DayState

BALANCE_CORRECT = "✅ Balance is correct - no discrepancy"


def discrepancy_message(discrepancy: Decimal) -> str:
    if discrepancy == 0:
        return BALANCE_CORRECT
    side = "extra" if discrepancy > 0 else "missing"
    return f"⚠️ DISCREPANCY DETECTED: {format_ksh(abs(discrepancy))} KSH {side}"


def finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "type": str(finding.type),
        "trans_id": finding.trans_id,
        "detail": finding.detail,
        "needs_fix": finding.needs_fix,
    }


def check_message(snapshot: BalanceSnapshot) -> str:
    if snapshot.discrepancy == 0 and snapshot.problems:
        return f"⚠️ {len(snapshot.problems)} problem(s) found"
    return discrepancy_message(snapshot.discrepancy)


def snapshot_json(snapshot: BalanceSnapshot, fleet: FleetSettings | None = None) -> dict[str, Any]:
    opened = timezone.localtime(
        day_open_moment(snapshot.business_day, fleet=fleet or FleetSettings.load())
    )
    return {
        "driver_name": snapshot.driver_id,
        "driver": snapshot.name,
        "old_balance": snapshot.old_balance,
        "calculated_balance": snapshot.calculated_balance,
        "discrepancy": snapshot.discrepancy,
        "transactions_count": snapshot.transactions_count,
        "from_datetime": opened.strftime("%Y-%m-%d %H:%M:%S"),
        # As in the legacy app, always false: a check reconciles nothing (a fix says `fixed`).
        "reconciled": False,
        "message": check_message(snapshot),
        # Beyond the legacy keys:
        "business_day": snapshot.business_day.isoformat(),
        "day_state": str(snapshot.day_state),
        "opening_balance": snapshot.opening_balance,
        "entries_count": snapshot.entries_count,
        "needs_fix": snapshot.needs_fix,
        "problems": [finding_json(p) for p in snapshot.problems],
        "information": [finding_json(i) for i in snapshot.information],
    }


def fix_message(fix: BalanceFix) -> str:
    if not fix.fixed:
        return BALANCE_CORRECT
    message = (
        f"✅ Balance fixed: {format_ksh(fix.old_balance)} → {format_ksh(fix.new_balance)} "
        f"(adjusted {format_ksh(abs(fix.adjustment))} KSH)"
    )
    if fix.entries_posted:
        message += f"; {fix.entries_posted} missing ledger entry(ies) posted"
    return message


def _fix_base(snapshot: BalanceSnapshot) -> dict[str, Any]:
    return {
        "driver_name": snapshot.driver_id,
        "driver": snapshot.name,
        "transactions_count": snapshot.transactions_count,
        "problems": [finding_json(p) for p in snapshot.problems],
        "information": [finding_json(i) for i in snapshot.information],
        "business_day": snapshot.business_day.isoformat(),
    }


def preview_json(snapshot: BalanceSnapshot) -> dict[str, Any]:
    message = check_message(snapshot)
    if snapshot.day_state != DayState.OPEN:
        # Closed days are never rewritten: say what a fix would really do.
        message += (
            f" (closed day: a fix posts {len(snapshot.problems)} correction(s) for missing or "
            "differing entries into the open day; the balance recorded at the close stays)"
        )
    elif snapshot.needs_fix:
        message += " (preview: run with auto_fix=True and a reason to fix)"
    return {
        **_fix_base(snapshot),
        "success": True,
        "fixed": False,
        "preview": True,
        "day_state": str(snapshot.day_state),
        "message": message,
        "old_balance": snapshot.old_balance,
        "new_balance": snapshot.calculated_balance,
        "adjustment": snapshot.discrepancy,
    }


def fix_json(fix: BalanceFix) -> dict[str, Any]:
    return {
        **_fix_base(fix.before),
        "success": True,
        "fixed": fix.fixed,
        "preview": False,
        "message": fix_message(fix),
        "old_balance": fix.old_balance,
        "new_balance": fix.new_balance,
        "adjustment": fix.adjustment,
        "entries_posted": fix.entries_posted,
        "business_day": fix.business_day.isoformat(),
    }


def mass_row_message(row: DriverReconciliation) -> str:
    return fix_message(row.fix) if row.fix else discrepancy_message(row.snapshot.discrepancy)


def _mass_row_json(row: DriverReconciliation) -> dict[str, Any]:
    snapshot = row.snapshot
    answer: dict[str, Any] = {
        "driver_name": snapshot.driver_id,
        "driver": snapshot.name,
        "discrepancy": snapshot.discrepancy,
        "fixed": row.fixed,
        "needs_review": row.needs_review,
        "business_day": snapshot.business_day.isoformat(),
        "message": mass_row_message(row),
        "problems": [finding_json(p) for p in snapshot.problems],
    }
    if row.error is not None:
        answer["error"] = row.error
    return answer


def mass_json(result: MassReconciliation) -> dict[str, Any]:
    return {
        "success": True,
        "total_drivers": len(result.snapshots),
        "drivers_checked": len(result.snapshots),
        "drivers_with_discrepancies": len(result.rows),
        "total_discrepancy_amount": result.total_discrepancy_amount,
        "auto_fixed": result.auto_fix,
        "drivers_fixed": result.drivers_fixed,
        "drivers_needing_review": result.drivers_needing_review,
        "review_threshold": result.review_threshold,
        "results": [_mass_row_json(row) for row in result.rows],
    }


# The legacy calls ---------------------------------------------------------------------------


def reconcile_driver_balance(driver_name: str, date: dt.date | str | None = None) -> dict[str, Any]:
    """Check one driver's balance against the ledger; changes nothing. `driver_name` is the
    driver id (DRV-112001), as in the legacy API; a name that matches one driver also works."""
    driver = driver_get(ref=driver_name, by_name=True)
    return snapshot_json(driver_balance_check(driver=driver, day=day_parse(date)))


def fix_driver_balance(
    driver_name: str,
    date: dt.date | str | None = None,
    auto_fix: bool = False,
    reason: str = "",
    actor: str = "system",
) -> dict[str, Any]:
    """Make the driver's open-day balance equal its ledger; auto_fix=False previews only."""
    driver = driver_get(ref=driver_name, by_name=True)
    day = day_parse(date)
    if not auto_fix:
        return preview_json(driver_balance_check(driver=driver, day=day))
    return fix_json(driver_balance_fix(driver=driver, day=day, reason=reason, actor=actor))


def reconcile_all_drivers_balances(
    date: dt.date | str | None = None,
    auto_fix: bool = False,
    reason: str = "mass reconciliation",
    actor: str = "system",
) -> dict[str, Any]:
    """Check every active driver; with auto_fix, fix those under the review threshold."""
    return mass_json(
        drivers_balance_reconcile(
            day=day_parse(date), auto_fix=auto_fix, reason=reason, actor=actor
        )
    )


# The legacy app's calls over HTTP (backoffice.frappe) --------------------------------------

LEGACY_NO_FIX_NEEDED = "✅ No fix needed - balance is already correct"
# What each legacy call said when it failed: {"success": false, "error": "Failed to …: why"}.
LEGACY_FAILURES = {
    "reconcile_driver_balance": "Failed to reconcile balance",
    "fix_driver_balance": "Failed to fix balance",
    "reconcile_all_drivers_balances": "Failed to reconcile all drivers",
}


def frappe_error_json(function: str, why: str) -> dict[str, Any]:
    return {"success": False, "error": f"{LEGACY_FAILURES.get(function, 'Failed')}: {why}"}


def _carry_over_note(snapshot: BalanceSnapshot) -> str:
    """Where our calculated balance means more than the legacy one: it counts what the day
    opened with (debt carried over at the day close, or an imported opening balance)."""
    if snapshot.opening_balance == 0:
        return ""
    return (
        f" (TukTuk Ledger counts the {format_ksh(snapshot.opening_balance)} KSH the day opened "
        "with, carried over at the day close or imported; the legacy formula left it out)"
    )


def frappe_check_json(snapshot: BalanceSnapshot, fleet: FleetSettings) -> dict[str, Any]:
    answer = snapshot_json(snapshot, fleet)
    answer["message"] += _carry_over_note(snapshot)
    return answer


def _no_fix_needed(snapshot: BalanceSnapshot) -> dict[str, Any]:
    return {
        "success": True,
        "message": LEGACY_NO_FIX_NEEDED + _carry_over_note(snapshot),
        "driver_name": snapshot.driver_id,
        "balance": snapshot.old_balance,
        # Beyond the legacy keys:
        "fixed": False,
        "business_day": snapshot.business_day.isoformat(),
    }


def _signed(amount: Decimal) -> str:
    return format_ksh(amount) if amount >= 0 else f"-{format_ksh(-amount)}"


def frappe_fix_message(fix: BalanceFix) -> str:
    """The legacy wording, the adjustment with its sign (old − new: negative when the cached
    balance was missing money)."""
    message = (
        f"✅ Balance fixed: {format_ksh(fix.old_balance)} → {format_ksh(fix.new_balance)} "
        f"(adjusted {_signed(fix.adjustment)} KSH)"
    )
    if fix.entries_posted:
        message += f"; {fix.entries_posted} missing ledger entry(ies) posted"
    return message + _carry_over_note(fix.before)


def frappe_reconcile_driver_balance(
    driver_name: str, date: dt.date | str | None = None
) -> dict[str, Any]:
    driver = driver_get(ref=driver_name, by_name=True)
    snapshot = driver_balance_check(driver=driver, day=day_parse(date))
    return frappe_check_json(snapshot, FleetSettings.load())


def frappe_fix_driver_balance(
    driver_name: str,
    date: dt.date | str | None = None,
    auto_fix: bool = False,
    *,
    reason: str,
    actor: str,
) -> dict[str, Any]:
    """The legacy fix: nothing to fix answers the legacy no-op; auto_fix fixes (the legacy call
    takes no reason: the caller records the call itself); without auto_fix, a preview (the
    legacy call fixed anyway: here nothing changes without auto_fix)."""
    driver = driver_get(ref=driver_name, by_name=True)
    day = day_parse(date)
    before = driver_balance_check(driver=driver, day=day)
    if not before.needs_fix:
        return _no_fix_needed(before)
    if not auto_fix:
        answer = preview_json(before)
        if before.day_state == DayState.OPEN:
            answer["message"] = (
                check_message(before)
                + " (preview: nothing was changed; call again with auto_fix=1 to fix)"
            )
        answer["message"] += _carry_over_note(before)
        return answer
    fix = driver_balance_fix(driver=driver, day=day, reason=reason, actor=actor)
    answer = fix_json(fix)
    if fix.fixed:
        answer["message"] = frappe_fix_message(fix)
    elif fix.before.day_state != DayState.OPEN:
        answer["message"] = (
            check_message(fix.before) + " (a closed day is never rewritten: its balance as "
            "recorded at the close stays, and nothing was missing from its payments)"
        )
    else:
        return _no_fix_needed(fix.before)  # fixed by someone else meanwhile
    return answer


def frappe_reconcile_all_drivers_balances(
    date: dt.date | str | None = None,
    auto_fix: bool = False,
    *,
    reason: str,
    actor: str,
) -> dict[str, Any]:
    """Every checked driver in `results` with the fields of the single check plus `fixed`, as
    the legacy call answered. A mass fix never touches a discrepancy above the fleet's review
    threshold: those drivers say so in their message, and the answer's message counts them."""
    result = drivers_balance_reconcile(
        day=day_parse(date), auto_fix=auto_fix, reason=reason, actor=actor
    )
    fleet = FleetSettings.load()
    threshold = format_ksh(result.review_threshold)
    rows = {row.snapshot.driver_pk: row for row in result.rows}
    results = []
    for snapshot in result.snapshots:
        item = frappe_check_json(snapshot, fleet)
        row = rows.get(snapshot.driver_pk)
        item["fixed"] = row is not None and row.fixed
        item["needs_review"] = row is not None and row.needs_review
        if row is not None and row.fix is not None and row.fix.fixed:
            item["new_balance"] = row.fix.new_balance
            item["adjustment"] = row.fix.adjustment
            item["message"] = frappe_fix_message(row.fix)
        elif row is not None and row.needs_review:
            item["message"] += (
                f"; needs review: above the review threshold of {threshold} KSH, which a mass "
                "fix never touches (fix it with fix_driver_balance)"
            )
        if row is not None and row.error is not None:
            item["error"] = row.error
        results.append(item)
    answer = mass_json(result)
    answer["results"] = results
    parts = [f"{len(result.rows)} of {len(result.snapshots)} driver(s) with discrepancies"]
    if auto_fix:
        parts.append(f"{result.drivers_fixed} fixed")
    if result.drivers_needing_review:
        parts.append(
            f"{result.drivers_needing_review} above the review threshold of {threshold} KSH"
            + (", left for review (TukTuk Ledger never mass-fixes above it)" if auto_fix else "")
        )
    answer["message"] = "; ".join(parts)
    return answer
