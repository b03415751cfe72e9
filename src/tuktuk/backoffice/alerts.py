"""Discrepancy alerts by email (SMTP from TUKTUK_EMAIL_URL). Never sent inside a transaction."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import DatabaseError
from django.utils import timezone

from tuktuk.backoffice.legacy import mass_row_message
from tuktuk.core import events
from tuktuk.core.money import format_ksh
from tuktuk.fleet.models import FleetSettings
from tuktuk.ledger.reconciliation import MassReconciliation
from tuktuk.mpesa.pull import PullRunResult

logger = logging.getLogger(__name__)


def alert_recipients() -> list[str]:
    extra = [e.strip() for e in FleetSettings.load().alert_recipients.split(",") if e.strip()]
    return list(dict.fromkeys([*settings.ALERT_EMAILS, *extra]))


def alert_safely(send: Any, **kwargs: Any) -> bool:
    """Send an alert; a mail outage is recorded as an event and never stops the caller."""
    try:
        return bool(send(**kwargs))
    except DatabaseError:
        # A lost connection fails the whole pass (the worker logs it and reconnects); recording
        # it as a mail outage would need the very connection that is gone.
        raise
    except Exception as exc:  # a mail outage must not stop payouts or the day close
        logger.exception("alert email could not be sent")
        events.event_record(
            title=events.EventTitle.ALERT_EMAIL_FAILED,
            level=events.EventLevel.ERROR,
            message=f"{type(exc).__name__}: {exc}",
        )
        return False


def discrepancy_alert_send(*, result: MassReconciliation) -> bool:
    """One email with the counts and amounts of a reconciliation that found discrepancies."""
    recipients = alert_recipients()
    broken = len(result.rows)
    if not broken or not recipients:
        return False
    lines = [
        "Balance check found discrepancies:",
        "",
        f"- Total drivers: {len(result.snapshots)}",
        f"- Drivers with issues: {broken}",
        f"- Total discrepancy: {format_ksh(result.total_discrepancy_amount)} KSH",
        f"- Fixed automatically: {result.drivers_fixed}",
        f"- Needing review (above {format_ksh(result.review_threshold)} KSH): "
        f"{result.drivers_needing_review}",
        "",
    ]
    lines += [
        f"  {row.snapshot.driver_id} {row.snapshot.name}: {mass_row_message(row)}"
        for row in result.rows
    ]
    lines += ["", "Please review and fix using the reconciliation tools."]
    message = EmailMessage(
        subject=f"⚠️ Balance Discrepancies Detected - {broken} Drivers",
        body="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        connection=get_connection(fail_silently=False),
    )
    message.send()
    logger.info("discrepancy alert sent", extra={"recipients": len(recipients), "drivers": broken})
    return True


def payout_failure_alert_send(*, payouts: list[Any]) -> bool:
    """One email listing payouts that failed and need an operator."""
    recipients = alert_recipients()
    if not payouts or not recipients:
        return False
    total = sum((p.amount for p in payouts), start=payouts[0].amount * 0)
    lines = [
        f"{len(payouts)} driver payout(s) failed ({format_ksh(total)} KSH in total):",
        "",
        *(
            f"  {p.driver.driver_id} {p.driver.name}: {format_ksh(p.amount)} KSH to {p.phone} "
            f"({p.originator_conversation_id}): {p.result_code} {p.result_desc}"
            for p in payouts
        ),
        "",
        "Retry them from the admin (Payouts) or with `tuktuk payouts retry ID --reason TEXT`.",
    ]
    EmailMessage(
        subject=f"⚠️ Payouts Failed - {len(payouts)} Payouts",
        body="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        connection=get_connection(fail_silently=False),
    ).send()
    return True


def pull_failure_alert_send(*, result: PullRunResult) -> bool:
    """One email for a Pull Transactions run that left money M-Pesa holds uncredited: the query
    failed, or listed payments could not be posted or read."""
    recipients = alert_recipients()
    if not result.needs_attention or not recipients:
        return False
    window = (
        f"{timezone.localtime(result.since):%Y-%m-%d %H:%M} to "
        f"{timezone.localtime(result.until):%Y-%m-%d %H:%M}"
    )
    lines = [f"Missed-payment recovery (M-Pesa Pull Transactions), {window}:", ""]
    if result.error:
        lines += [
            f"The query failed: {result.error}",
            "",
            "Nothing was compared. The next run covers this window again (M-Pesa keeps 48 "
            "hours); `tuktuk pull run --since ... --until ...` runs it by hand.",
        ]
    else:
        lines.append(
            f"{result.listed} listed, {result.known} known, {len(result.recovered)} recovered."
        )
    if result.failed:
        lines += ["", f"{len(result.failed)} payment(s) could not be posted:"]
        lines += [f"  {trans_id}: {error}" for trans_id, error in result.failed.items()]
    if result.skipped:
        lines += ["", f"{len(result.skipped)} row(s) could not be read and were not posted:"]
        lines += [f"  {label}: {why}" for label, why in result.skipped.items()]
        lines += ["Record the real ones with `tuktuk payment record-missed`."]
    EmailMessage(
        subject="⚠️ Missed Payment Recovery Needs Attention",
        body="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        connection=get_connection(fail_silently=False),
    ).send()
    return True
