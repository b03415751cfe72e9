"""Which stored callbacks the retention job archives and deletes, and which it must keep."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from tests.payouts.test_payout_states import result_body
from tests.support.c2b import confirmation_payload
from tests.support.clock import nairobi
from tests.support.factories import make_driver
from tuktuk.core import archive
from tuktuk.core.archive import archive_lines
from tuktuk.ledger.day_close import day_close_run
from tuktuk.mpesa.b2c_callbacks import b2c_callback_receive
from tuktuk.mpesa.callbacks import callback_store, confirmation_receive, validation_decide
from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState
from tuktuk.mpesa.retention import callbacks_archivable, callbacks_archive
from tuktuk.payouts.models import Payout, PayoutState
from tuktuk.payouts.services import payout_retry, payouts_release

pytestmark = pytest.mark.django_db

OLD = nairobi(2026, 1, 10, 9)
NOW = nairobi(2026, 3, 1, 9)  # 50 days later
DAYS = 30
JSON = "application/json"


def confirm(trans_id: str, amount: str = "1000", account: str = "TUK001") -> Callback:
    payload = confirmation_payload(trans_id=trans_id, amount=amount, account=account)
    confirmation_receive(
        body=json.dumps(payload).encode(), content_type=JSON, remote_addr="1.2.3.4"
    )
    return Callback.objects.filter(kind=CallbackKind.C2B_CONFIRMATION).order_by("-pk").first()  # type: ignore[return-value]


def b2c(kind: str, body: dict[str, Any]) -> Callback:
    b2c_callback_receive(
        kind=kind, body=json.dumps(body).encode(), content_type=JSON, remote_addr=""
    )
    return Callback.objects.order_by("-pk").first()  # type: ignore[return-value]


def submitted(trans_id: str) -> Payout:
    payout = Payout.objects.get(transaction__trans_id=trans_id)
    Payout.objects.filter(pk=payout.pk).update(
        state=PayoutState.SUBMITTED, conversation_id=f"AG_{trans_id}"
    )
    payout.refresh_from_db()
    return payout


def before() -> dt.datetime:
    return timezone.now() - dt.timedelta(days=DAYS)


def old_scenario() -> dict[str, Callback]:
    """At OLD: callbacks of every kind, some archivable, some still needed."""
    make_driver(1)
    made: dict[str, Callback] = {}
    with time_machine.travel(OLD, tick=False):
        made["paid"] = confirm("RET001")  # linked; its payout completes below
        made["redelivered"] = confirm("RET001")  # duplicate, linked to the same transaction
        made["open_payout"] = confirm("RET002")  # linked; its payout stays unknown
        made["uncaptured"] = confirm("RET003", account="NOSUCH")  # unmatched, not assigned
        confirmation_receive(body=b"{", content_type=JSON, remote_addr="")
        made["malformed"] = Callback.objects.get(state=CallbackState.REJECTED)
        validation_decide(
            body=json.dumps(
                confirmation_payload(trans_id="V1", amount="10", account="TUK001")
            ).encode(),
            content_type=JSON,
            remote_addr="",
        )
        made["validation"] = Callback.objects.get(kind=CallbackKind.C2B_VALIDATION)
        # A result still to process. (A C2B confirmation left received would also hold up
        # every day close since: the close waits for what was received before its cutoff.)
        made["received"] = callback_store(
            kind=CallbackKind.B2C_RESULT, body=b"{}", content_type=JSON, remote_addr=""
        )
        made["failed"] = callback_store(
            kind=CallbackKind.C2B_CONFIRMATION,
            body=b"{}",
            content_type=JSON,
            remote_addr="",
            state=CallbackState.FAILED,
        )
        payouts_release(actor="ops", everything=True)
        made["result_completed"] = b2c(CallbackKind.B2C_RESULT, result_body(submitted("RET001")))
        made["timeout_open"] = b2c(CallbackKind.B2C_TIMEOUT, result_body(submitted("RET002")))
    assert Payout.objects.get(transaction__trans_id="RET001").state == PayoutState.COMPLETED
    assert Payout.objects.get(transaction__trans_id="RET002").state == PayoutState.UNKNOWN
    assert made["received"].state == CallbackState.RECEIVED
    return made


ARCHIVABLE = ["paid", "redelivered", "malformed", "validation", "result_completed"]
NEEDED = ["open_payout", "uncaptured", "received", "failed", "timeout_open"]


def db_row(pk: int) -> dict[str, Any]:
    return Callback.objects.filter(pk=pk).values().get()


def test_old_callbacks_nothing_needs_go_to_the_file_field_by_field_and_leave_the_db(
    tmp_path: Path,
) -> None:
    made = old_scenario()
    with time_machine.travel(NOW - dt.timedelta(days=DAYS - 1), tick=False):
        young = callback_store(
            kind=CallbackKind.C2B_CONFIRMATION, body=b"{", content_type=JSON, remote_addr=""
        )
        Callback.objects.filter(pk=young.pk).update(state=CallbackState.REJECTED)
    with time_machine.travel(NOW, tick=False):
        day_close_run()
        expected = {made[name].pk: db_row(made[name].pk) for name in ARCHIVABLE}
        run = callbacks_archive(before=before(), directory=tmp_path)

    assert (run.archived, run.deleted) == (len(ARCHIVABLE), len(ARCHIVABLE))
    assert run.path is not None and run.path.parent == tmp_path
    assert run.path.name == "callbacks-20260301-090000.jsonl.gz"
    lines = list(archive_lines(run.path))
    assert [line["pk"] for line in lines] == sorted(expected)
    for line in lines:
        assert line["model"] == "mpesa.callback"
        row = expected[line["pk"]]
        fields = line["fields"]
        columns = {"transaction_id": "transaction"}  # the FK's column, the field's name
        assert set(fields) == {columns.get(k, k) for k in row} - {"id"}
        for name, value in row.items():
            if name == "id":
                continue
            archived = fields[columns.get(name, name)]
            if isinstance(value, dt.datetime):
                archived = dt.datetime.fromisoformat(archived)
            assert archived == value, name  # microseconds included
    remaining = set(Callback.objects.values_list("pk", flat=True))
    assert remaining == {made[name].pk for name in NEEDED} | {young.pk}
    assert list(tmp_path.iterdir()) == [run.path]  # no partial file left behind


def test_a_second_run_and_a_dry_run_archive_nothing_more(tmp_path: Path) -> None:
    old_scenario()
    with time_machine.travel(NOW, tick=False):
        day_close_run()
        counted = Callback.objects.count()
        dry = callbacks_archive(before=before(), directory=tmp_path, dry_run=True)
        assert (dry.archived, dry.deleted, dry.path) == (len(ARCHIVABLE), 0, None)
        assert Callback.objects.count() == counted and list(tmp_path.iterdir()) == []
        first = callbacks_archive(before=before(), directory=tmp_path, batch_size=2)
        again = callbacks_archive(before=before(), directory=tmp_path)
    assert first.deleted == len(ARCHIVABLE)
    assert (again.archived, again.deleted, again.path) == (0, 0, None)
    assert list(tmp_path.iterdir()) == [first.path]


def test_callbacks_of_a_day_not_closed_stay(tmp_path: Path) -> None:
    made = old_scenario()
    with time_machine.travel(NOW, tick=False):  # no day close since OLD
        run = callbacks_archive(before=before(), directory=tmp_path)
    archived = {line["pk"] for line in archive_lines(run.path)} if run.path else set()
    # The transaction-linked confirmations wait for their day's close; the rest may go.
    assert archived == {made[n].pk for n in ["malformed", "validation", "result_completed"]}


def test_result_callbacks_stay_until_the_payout_is_final_even_after_a_retry(
    tmp_path: Path,
) -> None:
    made = old_scenario()
    with time_machine.travel(OLD, tick=False):
        failed = b2c(CallbackKind.B2C_RESULT, result_body(submitted("RET002"), code=2001))
        payout = Payout.objects.get(transaction__trans_id="RET002")
        assert payout.state == PayoutState.FAILED
        payout_retry(payout_id=payout.pk, actor="ops", reason="wrong number fixed")
        payout.refresh_from_db()
        assert payout.originator_conversation_id.endswith("-R1")
    with time_machine.travel(NOW, tick=False):
        day_close_run()
        callbacks_archive(before=before(), directory=tmp_path)
        # Open again (pending): the callbacks of its first attempt stay.
        assert Callback.objects.filter(pk__in=[made["timeout_open"].pk, failed.pk]).count() == 2
        Payout.objects.filter(pk=payout.pk).update(state=PayoutState.COMPLETED)
        callbacks_archive(before=before(), directory=tmp_path)
    assert not Callback.objects.filter(pk__in=[made["timeout_open"].pk, failed.pk]).exists()
    assert not Callback.objects.filter(pk=made["open_payout"].pk).exists()
    assert set(Callback.objects.values_list("state", flat=True)) == {
        CallbackState.RECEIVED,
        CallbackState.FAILED,
        CallbackState.UNMATCHED,  # the uncaptured payment, not assigned yet
    }


def test_a_row_needed_again_after_the_write_is_not_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = old_scenario()
    verify = archive._verify

    def verify_then_race(path: Path, **kwargs: Any) -> None:
        verify(path, **kwargs)
        # A concurrent processing marks a selected row failed between the write and the delete.
        Callback.objects.filter(pk=made["malformed"].pk).update(state=CallbackState.FAILED)

    monkeypatch.setattr(archive, "_verify", verify_then_race)
    with time_machine.travel(NOW, tick=False):
        day_close_run()
        run = callbacks_archive(before=before(), directory=tmp_path)
    assert (run.archived, run.deleted) == (len(ARCHIVABLE), len(ARCHIVABLE) - 1)
    assert Callback.objects.filter(pk=made["malformed"].pk).exists()  # kept, and in the file


def test_an_unwritable_archive_deletes_nothing(tmp_path: Path) -> None:
    old_scenario()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with time_machine.travel(NOW, tick=False):
        day_close_run()
        counted = Callback.objects.count()
        with pytest.raises(
            archive.ArchiveError,
            match=r"cannot write the callbacks archive in .*"
            r"not-a-dir/archive: Not a directory; nothing was deleted",
        ):
            callbacks_archive(before=before(), directory=blocker / "archive")
        assert Callback.objects.count() == counted
        assert callbacks_archivable(before=before()).count() == len(ARCHIVABLE)


def test_bodies_survive_character_for_character(tmp_path: Path) -> None:
    make_driver(1)
    with time_machine.travel(OLD, tick=False):
        cb = callback_store(
            kind=CallbackKind.C2B_CONFIRMATION,
            body='{"TransAmount": "1000.10", "note": "ñ\\x00"}'.encode(),
            content_type=JSON,
            remote_addr="",
            state=CallbackState.REJECTED,
        )
    with time_machine.travel(NOW, tick=False):
        run = callbacks_archive(before=before(), directory=tmp_path)
    assert run.path is not None
    (line,) = archive_lines(run.path)
    assert line["fields"]["body"] == cb.body
