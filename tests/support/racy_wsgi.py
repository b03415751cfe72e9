"""The server with the LEGACY read-modify-save posting swapped in (for the control test only).

It reads the balance without a row lock and writes back an absolute value, as the legacy
`driver.current_balance += x; driver.save()` did. The concurrency harness must catch it.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tuktuk.settings")
django.setup()

from django.utils import timezone  # noqa: E402

from tuktuk.fleet.models import Driver, FleetSettings  # noqa: E402
from tuktuk.ledger import services  # noqa: E402
from tuktuk.ledger.business_day import business_day_of  # noqa: E402
from tuktuk.ledger.models import (  # noqa: E402
    EntryKind,
    LedgerEntry,
    Transaction,
    TransactionStatus,
)
from tuktuk.wsgi import application  # noqa: E402

__all__ = ["application"]


def read_modify_save_post_once(payment, source, within, received=None, **_ignored):  # type: ignore[no-untyped-def]
    fleet = FleetSettings.load()
    # The legacy rule on purpose: the day from the server's clock at posting time (a server
    # process: under --clock-at its clock is libfaketime's shifted one, never the real hour).
    now = timezone.now()
    day = business_day_of(now, fleet=fleet)
    vehicle_pk, driver_pk, *_ = services.account_resolve(payment.account_reference)
    existing = Transaction.objects.filter(trans_id=payment.trans_id).first()
    if existing is not None:
        result = services.PostingResult(services.PostingOutcome.DUPLICATE, existing)
    else:
        driver = Driver.objects.get(pk=driver_pk)  # no select_for_update: the legacy bug
        split = services.driver_split(driver=driver, fleet=fleet, amount=payment.amount)
        posted = Transaction.objects.create(
            **services.transaction_fields(payment, source),
            status=TransactionStatus.COMPLETED,
            driver=driver,
            vehicle_id=vehicle_pk,
            driver_share=split.driver_share,
            target_contribution=split.target_contribution,
            received_at=now,
            business_day=day,
        )
        LedgerEntry.objects.create(
            driver=driver,
            business_day=day,
            kind=EntryKind.CONTRIBUTION,
            amount=split.target_contribution,
            transaction=posted,
        )
        driver.current_balance += split.target_contribution
        driver.balance_day = day
        driver.save(update_fields=["current_balance", "balance_day"])
        result = services.PostingResult(services.PostingOutcome.POSTED, posted)
    if within is not None:
        within(result)
    return result


services.posting_apply = read_modify_save_post_once
