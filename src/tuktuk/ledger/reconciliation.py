"""The legacy reconciliation tools, kept by name, arguments and JSON keys, made exact.

The legacy formula summed today's contributions since 06:00 and so ignored the debt carried over
at the day close and payments between midnight and 06:00. Here the calculated balance is the sum
of the driver's ledger entries for the business day, opening carry-over included.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from tuktuk.core import events
from tuktuk.core.db import atomic_with_retry
from tuktuk.core.money import ZERO, format_ksh, money
from tuktuk.fleet.models import Driver, FleetSettings
from tuktuk.ledger.business_day import day_open_moment
from tuktuk.ledger.day_close import current_business_day, driver_roll_to_day, ledger_sum
from tuktuk.ledger.models import (
    BalanceCorrection,
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from tuktuk.ledger.selectors import BalanceSnapshot, DayState, balance_snapshots

logger = logging.getLogger(__name__)


class DriverNotFound(LookupError):
    pass


def _parse_day(date: dt.date | str | None) -> dt.date | None:
    if date is None or date == "":
        return None
    if isinstance(date, dt.date):
        return date
    try:
        return dt.date.fromisoformat(str(date))
    except ValueError as exc:
        raise ValueError(f"date {date!r} is not YYYY-MM-DD") from exc


def _driver(driver_name: str) -> Driver:
    """`driver_name` is the driver id (DRV-112001), as in the legacy API; a name also works."""
    driver = Driver.objects.filter(driver_id=driver_name.strip().upper()).first()
    if driver is None:
        matches = list(Driver.objects.filter(name__iexact=driver_name.strip())[:2])
        driver = matches[0] if len(matches) == 1 else None
    if driver is None:
        raise DriverNotFound(f"no driver {driver_name!r}")
    return driver


def discrepancy_message(discrepancy: Decimal) -> str:
    if discrepancy == 0:
        return "✅ Balance is correct - no discrepancy"
    side = "extra" if discrepancy > 0 else "missing"
    return f"⚠️ DISCREPANCY DETECTED: {format_ksh(abs(discrepancy))} KSH {side}"


def _snapshot_dict(snapshot: BalanceSnapshot, fleet: FleetSettings) -> dict[str, Any]:
    opened = timezone.localtime(day_open_moment(snapshot.business_day, fleet=fleet))
    message = discrepancy_message(snapshot.discrepancy)
    if snapshot.discrepancy == 0 and snapshot.needs_fix:
        message = f"⚠️ {len([p for p in snapshot.problems if p.needs_fix])} problem(s) found"
    return {
        "driver_name": snapshot.driver_id,
        "driver": snapshot.name,
        "old_balance": snapshot.old_balance,
        "calculated_balance": snapshot.calculated_balance,
        "discrepancy": snapshot.discrepancy,
        "transactions_count": snapshot.transactions_count,
        "from_datetime": opened.strftime("%Y-%m-%d %H:%M:%S"),
        "message": message,
        # Beyond the legacy keys:
        "business_day": snapshot.business_day.isoformat(),
        "day_state": snapshot.day_state,
        "opening_balance": snapshot.opening_balance,
        "entries_count": snapshot.entries_count,
        "problems": [problem.as_dict() for problem in snapshot.problems],
    }


def reconcile_driver_balance(driver_name: str, date: dt.date | str | None = None) -> dict[str, Any]:
    """Check one driver's balance against the ledger; changes nothing."""
    driver = _driver(driver_name)
    fleet = FleetSettings.load()
    (snapshot,) = balance_snapshots(driver_pks=[driver.pk], day=_parse_day(date))
    # A read: no event here, so polling a driver's reconciliation cannot flood the log. The
    # batch check and every fix record what they found.
    return _snapshot_dict(snapshot, fleet)


def _post_missing_contributions(
    *, driver: Driver, past: dt.date | None, open_day: dt.date, reason: str
) -> int:
    """Give every completed payment its contribution entry. A payment of the open day gets its
    own entry; one of a closed day gets a correction in the open day (closed days are never
    rewritten), as does an entry whose amount differs from its transaction."""
    day = past or open_day
    payments = Transaction.objects.filter(
        driver=driver,
        business_day=day,
        status=TransactionStatus.COMPLETED,
        transaction_type=TransactionType.PAYMENT,
    ).select_related("entry")
    posted = 0
    for tx in payments.annotate(corrected=Sum("correction_entries__amount")):
        own = tx.entry.amount if hasattr(tx, "entry") else None
        missing = tx.target_contribution - (own or ZERO) - (tx.corrected or ZERO)
        if missing == 0:
            continue
        if own is None and day == open_day and not tx.corrected:
            LedgerEntry.objects.create(
                driver=driver,
                business_day=open_day,
                kind=EntryKind.CONTRIBUTION,
                amount=tx.target_contribution,
                transaction=tx,
                note="missing entry posted by a balance fix",
            )
        else:
            what = "missing contribution" if own is None else "entry differed"
            LedgerEntry.objects.create(
                driver=driver,
                business_day=open_day,
                kind=EntryKind.CORRECTION,
                amount=missing,
                corrects=tx,
                note=f"{what} of {tx.trans_id} on {day}: {reason}"[:255],
            )
        posted += 1
    return posted


def fix_driver_balance(
    driver_name: str,
    date: dt.date | str | None = None,
    auto_fix: bool = False,
    reason: str = "",
    actor: str = "system",
) -> dict[str, Any]:
    """Make the driver's open-day balance equal its ledger. auto_fix=False previews only."""
    if auto_fix and not reason.strip():
        raise ValueError("a reason is required to fix a balance")
    driver = _driver(driver_name)
    day = _parse_day(date)
    preview = reconcile_driver_balance(driver.driver_id, day)
    base = {
        "driver_name": driver.driver_id,
        "driver": driver.name,
        "transactions_count": preview["transactions_count"],
        "problems": preview["problems"],
        "business_day": preview["business_day"],
    }
    needs = preview["discrepancy"] != 0 or any(p["needs_fix"] for p in preview["problems"])
    if not auto_fix:
        message = preview["message"]
        if preview["day_state"] != DayState.OPEN:
            # Closed days are never rewritten: say what a fix would really do.
            missing = [p for p in preview["problems"] if p["needs_fix"]]
            message += (
                f" (closed day: a fix posts {len(missing)} correction(s) for missing or "
                "differing entries into the open day; the balance recorded at the close stays)"
            )
        elif needs:
            message += " (preview: run with auto_fix=True and a reason to fix)"
        return {
            **base,
            "success": True,
            "fixed": False,
            "preview": True,
            "day_state": preview["day_state"],
            "message": message,
            "old_balance": preview["old_balance"],
            "new_balance": preview["calculated_balance"],
            "adjustment": preview["discrepancy"],
        }
    if needs:
        events.event_record(
            title=events.EventTitle.DISCREPANCY_DETECTED,
            level=events.EventLevel.WARNING,
            driver=driver,
            actor=actor,
            message=preview["message"],
            data={k: str(v) for k, v in preview.items() if k != "problems"},
        )

    def fix() -> dict[str, Any]:
        fleet = FleetSettings.load()
        locked = Driver.objects.select_for_update().get(pk=driver.pk)
        driver_roll_to_day(driver=locked, day=current_business_day(fleet), fleet=fleet)
        open_day = locked.balance_day
        assert open_day is not None
        past = day if day is not None and day != open_day else None
        if day is not None and day > open_day:
            raise ValueError(f"{day} is not a business day yet; the open day is {open_day}")
        posted = _post_missing_contributions(
            driver=locked, past=past, open_day=open_day, reason=reason
        )
        old = money(locked.current_balance)
        new = ledger_sum(driver_id=locked.pk, business_day=open_day)
        target = locked.effective_target(fleet)
        correction = None
        if old != new:
            correction = BalanceCorrection.objects.create(
                driver=locked,
                business_day=open_day,
                old_balance=old,
                new_balance=new,
                adjustment=old - new,
                reason=reason,
                actor=actor,
            )
            Driver.objects.filter(pk=locked.pk).update(
                current_balance=new,
                left_to_target=max(ZERO, target - new),
                updated_at=timezone.now(),
            )
        return {
            "old": old,
            "new": new,
            "posted": posted,
            "correction": correction,
            "open_day": open_day,
        }

    done = atomic_with_retry(
        fix, attempts=settings.POSTING_MAX_ATTEMPTS, label="fix_driver_balance"
    )
    old, new = done["old"], done["new"]
    adjustment = old - new
    if adjustment or done["posted"]:
        message = (
            f"✅ Balance fixed: {format_ksh(old)} → {format_ksh(new)} "
            f"(adjusted {format_ksh(abs(adjustment))} KSH)"
        )
        if done["posted"]:
            message += f"; {done['posted']} missing ledger entry(ies) posted"
        events.event_record(
            title=events.EventTitle.BALANCE_FIXED,
            driver=driver,
            actor=actor,
            message=message,
            data={
                "old_balance": str(old),
                "new_balance": str(new),
                "adjustment": str(adjustment),
                "entries_posted": done["posted"],
                "reason": reason,
                "business_day": done["open_day"].isoformat(),
            },
        )
    else:
        message = "✅ Balance is correct - no discrepancy"
    return {
        **base,
        "success": True,
        "fixed": bool(adjustment or done["posted"]),
        "preview": False,
        "message": message,
        "old_balance": old,
        "new_balance": new,
        "adjustment": adjustment,
        "entries_posted": done["posted"],
        "business_day": done["open_day"].isoformat(),
    }


def reconcile_all_drivers_balances(
    date: dt.date | str | None = None,
    auto_fix: bool = False,
    reason: str = "mass reconciliation",
    actor: str = "system",
) -> dict[str, Any]:
    """Check every active driver; with auto_fix, fix those under the review threshold."""
    fleet = FleetSettings.load()
    day = _parse_day(date)
    snapshots = balance_snapshots(day=day)
    threshold = fleet.discrepancy_review_threshold
    results = []
    broken = [s for s in snapshots if s.needs_fix]
    for snapshot in broken:
        entry: dict[str, Any] = {
            "driver_name": snapshot.driver_id,
            "driver": snapshot.name,
            "discrepancy": snapshot.discrepancy,
            "fixed": False,
            "needs_review": abs(snapshot.discrepancy) > threshold,
            "business_day": snapshot.business_day.isoformat(),
            "message": discrepancy_message(snapshot.discrepancy),
            "problems": [p.as_dict() for p in snapshot.problems],
        }
        fixable = snapshot.day_state == DayState.OPEN or any(p.needs_fix for p in snapshot.problems)
        if auto_fix and not entry["needs_review"] and fixable:
            # One transaction per driver: a failure is reported for that driver and the
            # others are still fixed, never a half-told story.
            try:
                fixed = fix_driver_balance(
                    snapshot.driver_id, day, auto_fix=True, reason=reason, actor=actor
                )
                entry["fixed"] = fixed["fixed"]
                entry["message"] = fixed["message"]
            except Exception as exc:
                logger.exception("auto-fix failed", extra={"driver": snapshot.driver_id})
                entry["error"] = f"{type(exc).__name__}: {exc}"
        results.append(entry)
    total = sum((abs(s.discrepancy) for s in broken), ZERO)
    if broken:
        events.event_record(
            title=events.EventTitle.DISCREPANCY_DETECTED,
            level=events.EventLevel.WARNING,
            message=f"{len(broken)} of {len(snapshots)} drivers with discrepancies, "
            f"{format_ksh(total)} KSH in total",
            data={"drivers": [r["driver_name"] for r in results], "total": str(total)},
        )
    return {
        "success": True,
        "total_drivers": len(snapshots),
        "drivers_checked": len(snapshots),
        "drivers_with_discrepancies": len(broken),
        "total_discrepancy_amount": total,
        "auto_fixed": auto_fix,
        "drivers_fixed": sum(1 for r in results if r["fixed"]),
        "drivers_needing_review": sum(1 for r in results if r["needs_review"]),
        "review_threshold": threshold,
        "results": results,
    }
