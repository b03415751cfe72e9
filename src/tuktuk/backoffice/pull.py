"""The worker's hourly Pull Transactions run (tuktuk.mpesa.pull) and its alert.

One worker runs it per interval (schedule_claim). The window starts where the last complete
run ended, so a worker that was down, or a run whose query or postings failed, is caught up by
the next run, as far back as M-Pesa keeps the list (48 hours).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.utils import timezone

from tuktuk.backoffice.alerts import alert_safely, pull_failure_alert_send
from tuktuk.backoffice.schedule import schedule_claim, schedule_mark_advance, schedule_mark_get
from tuktuk.mpesa import daraja
from tuktuk.mpesa.pull import PullRunResult, PullSource, pull_reconcile, pull_window

PULL_JOB = "pull-transactions"
# Not a run time: the end of the last window whose every listed payment is accounted for.
PULL_COVERED_UNTIL = "pull-transactions-covered-until"


def pull_enabled() -> bool:
    """TUKTUK_PULL_ENABLED, or (unset) whether Daraja is configured."""
    if settings.PULL_ENABLED is not None:
        return settings.PULL_ENABLED
    return daraja.is_configured()


def pull_run_and_alert(
    *, source: PullSource, since: dt.datetime, until: dt.datetime, actor: str
) -> tuple[PullRunResult, bool]:
    result = pull_reconcile(source=source, since=since, until=until, actor=actor)
    alerted = (
        alert_safely(pull_failure_alert_send, result=result) if result.needs_attention else False
    )
    return result, alerted


def pull_scheduled(*, source: PullSource) -> dict[str, Any] | None:
    """The scheduled run if it is due (None if not), with the alert when it needs one."""
    if not schedule_claim(name=PULL_JOB, every=dt.timedelta(minutes=settings.PULL_EVERY_MINUTES)):
        return None
    covered_until = schedule_mark_get(name=PULL_COVERED_UNTIL)
    since, until = pull_window(now=timezone.now(), covered_until=covered_until)
    result, alerted = pull_run_and_alert(source=source, since=since, until=until, actor="worker")
    if result.ok:
        schedule_mark_advance(name=PULL_COVERED_UNTIL, to=until)
    elif covered_until is None:
        # The very first run failed: the next one must still start where this one did.
        schedule_mark_advance(name=PULL_COVERED_UNTIL, to=since)
    return {**result.as_dict(), "alert_sent": alerted}
