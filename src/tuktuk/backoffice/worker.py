"""The background worker: replays stalled callbacks, runs the scheduled reconciliation (every N
hours and before each day close), emails discrepancy alerts, recovers missed C2B payments from
M-Pesa's Pull Transactions list (hourly), closes business days when due, catching up day by day
after downtime, archives old callbacks and events once a day, and sends driver SMS (queued
by the back office, or derived from what committed). Network calls (Daraja, email, SMS) happen
outside transactions.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from tuktuk.backoffice.alerts import alert_safely, discrepancy_alert_send, payout_failure_alert_send
from tuktuk.backoffice.pull import pull_enabled, pull_scheduled
from tuktuk.backoffice.reports.services import report_email_send, reports_due_store
from tuktuk.backoffice.retention import records_archive
from tuktuk.backoffice.schedule import schedule_claim
from tuktuk.backoffice.sms.worker import SmsWorkerState, sms_pass
from tuktuk.fleet.models import FleetSettings
from tuktuk.ledger.day_close import DayCloseNotReady, day_close_run, days_due
from tuktuk.ledger.reconciliation import drivers_balance_reconcile
from tuktuk.mpesa import daraja
from tuktuk.mpesa.callbacks import callbacks_replay
from tuktuk.payouts.services import payouts_failed_unalerted, payouts_work

logger = logging.getLogger(__name__)


@dataclass
class WorkerState:
    report: dict[str, Any] = field(default_factory=dict)
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # Kept between passes so the OAuth token is cached until shortly before it expires.
    client: daraja.DarajaClient | None = None
    sms: SmsWorkerState = field(default_factory=SmsWorkerState)


def _payouts(state: WorkerState) -> dict[str, Any]:
    if not daraja.is_configured():
        return {"skipped": "Daraja credentials not configured"}
    if state.client is None:
        state.client = daraja.DarajaClient()
    report: dict[str, Any] = payouts_work(gateway=state.client, worker=state.worker_id).as_dict()
    failed = payouts_failed_unalerted()
    if failed:
        report["failure_alert_sent"] = alert_safely(payout_failure_alert_send, payouts=failed)
    return report


def _pull(state: WorkerState) -> dict[str, Any] | None:
    if not pull_enabled():
        return None
    if not daraja.is_configured():
        return {"skipped": "TUKTUK_PULL_ENABLED is on but Daraja credentials are not configured"}
    if state.client is None:
        state.client = daraja.DarajaClient()
    return pull_scheduled(source=state.client)


def _reconcile_and_alert(*, why: str) -> dict[str, Any]:
    result = drivers_balance_reconcile(auto_fix=False)
    summary: dict[str, Any] = {
        "why": why,
        "drivers_with_discrepancies": len(result.rows),
        "alert_sent": False,
    }
    if result.rows:
        summary["alert_sent"] = alert_safely(discrepancy_alert_send, result=result)
    return summary


def _archive_safely() -> dict[str, Any]:
    try:
        return records_archive(actor="worker").as_dict()
    except DatabaseError:
        raise  # a lost connection fails the pass: the worker logs it and reconnects
    except Exception as exc:  # recorded as an "Archive Failed" event; payouts must go on
        logger.exception("the daily archive failed")
        return {"failed": f"{type(exc).__name__}: {exc}"}


def _reports_safely() -> list[dict[str, Any]]:
    """The daily (and on Sundays weekly) report, stored once after the close and emailed to
    the alert recipients (backoffice/reports): a failure here never stops the other jobs."""
    done: list[dict[str, Any]] = []
    try:
        for stored in reports_due_store(actor="worker"):
            sent = alert_safely(report_email_send, report=stored)
            done.append({"report": str(stored), "emailed": sent})
    except DatabaseError:
        raise  # a lost connection fails the pass: the worker logs it and reconnects
    except Exception as exc:
        logger.exception("storing the daily report failed")
        done.append({"failed": f"{type(exc).__name__}: {exc}"})
    return done


def _sms_safely(state: WorkerState) -> dict[str, Any]:
    """Driver SMS (backoffice.sms), last in the pass: an SMS outage or bug never stops payouts
    or the day close."""
    try:
        return sms_pass(state=state.sms, worker=state.worker_id)
    except DatabaseError:
        raise  # a lost connection fails the pass: the worker logs it and reconnects
    except Exception as exc:
        logger.exception("the SMS pass failed")
        return {"failed": f"{type(exc).__name__}: {exc}"}


def worker_tick(state: WorkerState) -> dict[str, Any]:
    """One pass of everything that is due. Safe to run from several workers at once."""
    report: dict[str, Any] = {"replayed": callbacks_replay(), "payouts": _payouts(state)}
    pulled = _pull(state)
    if pulled is not None:
        report["pull"] = pulled
    fleet = FleetSettings.load()
    due = days_due(fleet)
    every = dt.timedelta(hours=settings.RECONCILE_EVERY_HOURS)
    if due:
        # One check (and one email) per close, whichever worker gets there first; the close
        # itself is exactly-once per driver and day anyway.
        if schedule_claim(name=f"reconcile-before-close-{due[-1]}", every=dt.timedelta(days=1)):
            report["reconciliation"] = _reconcile_and_alert(why="before day close")
        try:
            report["closed"] = day_close_run()
            report["days_closed"] = [day.isoformat() for day in due]
        except DayCloseNotReady as waiting:
            # Confirmations received before the cutoff are still being posted (or the cutoff
            # is seconds old): the next pass closes.
            report["close_waiting"] = str(waiting)
    elif schedule_claim(name="reconcile-scheduled", every=every):
        report["reconciliation"] = _reconcile_and_alert(why="scheduled")
    if schedule_claim(name="archive", every=dt.timedelta(days=1)):
        report["archive"] = _archive_safely()
    reports = _reports_safely()
    if reports:
        report["reports"] = reports
    report["sms"] = _sms_safely(state)
    state.report = report
    return report
