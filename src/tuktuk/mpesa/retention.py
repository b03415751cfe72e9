"""Which stored callbacks may leave the database, and archiving them (docs/design.md,
"Retention").

Nothing in the ledger reads callbacks: reconciliation, statements and the balance fix work from
transactions and ledger entries (a redelivered TransID is counted on its transaction,
`Transaction.redeliveries`). What does read them is the replay (states received and failed),
the B2C/status result handling while a payout is still open, the missed-payment verification,
the admin inbox and the duplicates report. So an old callback is kept while:

- it is `received` or `failed`: it may still be replayed (invariant 7);
- it names (by its trans_id, which for result callbacks is the payout's
  OriginatorConversationID) a payout that is not completed or failed, or an earlier attempt of
  such a payout (a retried payout gets `<id>-R<n>`), or a missed payment still being verified;
- it is linked to a transaction that is still open: uncaptured (waiting for an operator), with
  a payout that is not final, or of a business day its driver has not closed yet.

Everything else older than the cut-off is archived, then deleted; the duplicates report then
only covers days whose callbacks are still stored (older days: read the archive files).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

from django.db.models import Exists, OuterRef, Q, QuerySet

from tuktuk.core.archive import ArchiveRun, table_archive
from tuktuk.ledger.models import (
    DayClose,
    MissedPayment,
    MissedPaymentState,
    Transaction,
    TransactionStatus,
)
from tuktuk.mpesa.models import Callback, CallbackState
from tuktuk.payouts.models import Payout, PayoutState

REPLAYABLE = [CallbackState.RECEIVED, CallbackState.FAILED]
FINAL_PAYOUT_STATES = [PayoutState.COMPLETED, PayoutState.FAILED]
_RETRY_ID = re.compile(r"^(?P<base>.+)-R(?P<n>\d+)$")


def _open_payouts() -> QuerySet[Payout]:
    return Payout.objects.exclude(state__in=FINAL_PAYOUT_STATES)


def _earlier_attempt_ids() -> list[str]:
    """The ids of earlier attempts of open retried payouts: their result callbacks carry the
    old id. Few rows (an operator retries a failed payout by hand)."""
    ids: list[str] = []
    for current in (
        _open_payouts()
        .filter(originator_conversation_id__contains="-R")
        .values_list("originator_conversation_id", flat=True)
    ):
        match = _RETRY_ID.match(current)
        if match:
            base, n = match["base"], int(match["n"])
            ids += [base, *(f"{base}-R{k}" for k in range(1, n))]
    return ids


def callbacks_archivable(*, before: dt.datetime) -> QuerySet[Callback]:
    """Callbacks received before `before` that nothing needs any more (module docstring)."""
    open_transaction = Transaction.objects.filter(pk=OuterRef("transaction_id")).filter(
        Q(status=TransactionStatus.UNMATCHED)
        | Exists(_open_payouts().filter(transaction=OuterRef("pk")))
        | ~Exists(
            DayClose.objects.filter(
                driver_id=OuterRef("driver_id"), business_day=OuterRef("business_day")
            )
        )
    )
    return (
        Callback.objects.filter(received_at__lt=before)
        .exclude(state__in=REPLAYABLE)
        .exclude(trans_id__in=_earlier_attempt_ids())
        .filter(
            ~Exists(_open_payouts().filter(originator_conversation_id=OuterRef("trans_id"))),
            ~Exists(
                MissedPayment.objects.filter(
                    trans_id=OuterRef("trans_id"), state=MissedPaymentState.VERIFYING
                )
            ),
            ~Exists(open_transaction),
        )
    )


def callbacks_archive(
    *, before: dt.datetime, directory: Path, batch_size: int = 1000, dry_run: bool = False
) -> ArchiveRun:
    """Archive the archivable callbacks into `directory` (core.archive), then delete them."""

    def select(after: int, limit: int) -> Sequence[Callback]:
        return list(callbacks_archivable(before=before).filter(pk__gt=after).order_by("pk")[:limit])

    def delete(pks: list[int]) -> int:
        # Only rows that are in the verified file, and only if still archivable: the whole
        # condition is in the DELETE's WHERE, so a callback replayed or a payout reopened since
        # the select stays (it is in the file as well). The subqueries read other tables only,
        # which MySQL allows in a DELETE.
        deleted, _ = callbacks_archivable(before=before).filter(pk__in=pks).delete()
        return deleted

    return table_archive(
        name="callbacks",
        directory=directory,
        select=select,
        delete=delete,
        batch_size=batch_size,
        dry_run=dry_run,
    )
