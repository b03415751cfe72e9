"""The background worker: replays stalled callbacks, runs the scheduled reconciliation (every N
hours and before each day close), emails discrepancy alerts, and closes business days when due,
catching up day by day after downtime. Network calls (email) happen outside transactions.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from tuktuk.fleet.models import FleetSettings
from tuktuk.ledger.day_close import day_close_run, days_due
from tuktuk.ledger.reconciliation import reconcile_all_drivers_balances
from tuktuk.mpesa.callbacks import callbacks_replay
from tuktuk.operations import services as events
from tuktuk.operations.alerts import discrepancy_alert_send

logger = logging.getLogger(__name__)


@dataclass
class WorkerState:
    last_reconciliation: dt.datetime | None = None
    report: dict[str, Any] = field(default_factory=dict)


def _reconcile_and_alert(state: WorkerState, *, why: str) -> dict[str, Any]:
    result = reconcile_all_drivers_balances(auto_fix=False)
    state.last_reconciliation = timezone.now()
    summary = {
        "why": why,
        "drivers_with_discrepancies": result["drivers_with_discrepancies"],
        "alert_sent": False,
    }
    if result["drivers_with_discrepancies"]:
        try:
            summary["alert_sent"] = discrepancy_alert_send(result=result)
        except Exception as exc:  # a mail outage must not stop the day close
            logger.exception("discrepancy alert could not be sent")
            events.event_record(
                title="Alert Email Failed",
                level="error",
                message=f"{type(exc).__name__}: {exc}",
            )
    return summary


def worker_tick(state: WorkerState) -> dict[str, Any]:
    """One pass of everything that is due. Safe to run from several workers at once."""
    report: dict[str, Any] = {"replayed": callbacks_replay()}
    fleet = FleetSettings.load()
    due = days_due(fleet)
    every = dt.timedelta(hours=settings.RECONCILE_EVERY_HOURS)
    if due:
        report["reconciliation"] = _reconcile_and_alert(state, why="before day close")
        report["closed"] = day_close_run()
        report["days_closed"] = [day.isoformat() for day in due]
    elif state.last_reconciliation is None or timezone.now() - state.last_reconciliation >= every:
        report["reconciliation"] = _reconcile_and_alert(state, why="scheduled")
    state.report = report
    return report
