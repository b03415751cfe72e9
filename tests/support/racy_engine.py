"""Posting engines with their protection taken out (for the control test only): a batch locks
no rows, and each payment is posted by the legacy read-modify-save (tests/support/racy_wsgi.py).
Two of these over one inbox must lose updates, and the concurrency harness must catch it.

    python -m tests.support.racy_engine
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence

from tests.support import racy_wsgi  # noqa: F401 - sets Django up and swaps the posting in
from tuktuk.fleet.models import Driver
from tuktuk.ledger import batch_posting
from tuktuk.ledger.batch_posting import BatchItem
from tuktuk.ledger.services import Resolved, account_resolve
from tuktuk.mpesa.posting_engine import engine_run


def resolve_without_locks(
    items: Sequence[BatchItem],
) -> tuple[dict[int, Resolved], dict[int, Driver]]:
    """No row locked, and no locked driver rows handed to the fast lane: every payment goes
    through the (swapped) posting."""
    resolved = {
        position: account_resolve(
            item.payment.account_reference, at=item.payment.mpesa_time or item.received
        )
        for position, item in enumerate(items)
    }
    return resolved, {}


batch_posting._rows_lock = resolve_without_locks  # type: ignore[assignment]

if __name__ == "__main__":
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    engine_run(stop=stop, limit=2)
