"""The retention job end to end: events, the `tuktuk archive` command, the daily worker run,
and the ledger's answers unchanged by archiving."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.mpesa.test_retention import ARCHIVABLE, NEEDED, OLD, old_scenario
from tests.support.clock import nairobi
from tests.support.factories import edit_balance_by_sql, make_driver, pay
from tests.support.invariants import assert_invariants
from tuktuk.backoffice.legacy import reconcile_all_drivers_balances, reconcile_driver_balance
from tuktuk.backoffice.retention import archive_cutoff, records_archive
from tuktuk.backoffice.worker import WorkerState, worker_tick
from tuktuk.core import events
from tuktuk.core.archive import ArchiveError, archive_lines
from tuktuk.core.models import Event, EventTitle
from tuktuk.fleet.models import Driver
from tuktuk.ledger.adjustments import adjustment_add
from tuktuk.ledger.day_close import day_close_run
from tuktuk.mpesa.callbacks import callbacks_replay
from tuktuk.mpesa.models import Callback
from tuktuk.mpesa.selectors import duplicates_report
from tuktuk.payouts.models import Payout

pytestmark = pytest.mark.django_db

NOW = nairobi(2026, 3, 1, 9)
DAYS = 30


def old_event(title: EventTitle, **data: Any) -> Event:
    with time_machine.travel(OLD, tick=False):
        return events.event_record(title=title, message="old", data=data)


def test_old_events_go_unless_they_name_something_still_needed(tmp_path: Path) -> None:
    made = old_scenario()
    with time_machine.travel(OLD, tick=False):
        adjustment = adjustment_add(
            driver_id="DRV-112001", amount="200", reason="overpaid", actor="ops"
        )
    by_title = {e.title: e for e in Event.objects.all()}
    open_adjustment = by_title[EventTitle.ADJUSTMENT_RECORDED]
    assert open_adjustment.data["adjustment"] == adjustment.pk
    completed = by_title[EventTitle.PAYOUT_COMPLETED]  # names a completed payout: may go
    rejected = by_title[EventTitle.CALLBACK_REJECTED]  # names an archivable callback: may go
    failed_story = old_event(EventTitle.CALLBACK_FAILED, callback_id=made["failed"].pk)
    open_payout = Payout.objects.get(transaction__trans_id="RET002")
    unknown = old_event(EventTitle.PAYOUT_UNKNOWN, payout=open_payout.pk)
    with time_machine.travel(NOW - dt.timedelta(days=DAYS - 1), tick=False):
        young = events.event_record(title=EventTitle.PAYOUTS_RELEASED, message="young")
    with time_machine.travel(NOW, tick=False):
        day_close_run()
        report = records_archive(older_than_days=DAYS, directory=tmp_path, actor="tester")

    kept = set(Event.objects.values_list("pk", flat=True))
    assert {open_adjustment.pk, failed_story.pk, unknown.pk, young.pk} <= kept
    assert not {completed.pk, rejected.pk} & kept
    assert report.events.path is not None and report.callbacks.path is not None
    archived = {line["pk"]: line["fields"] for line in archive_lines(report.events.path)}
    assert {completed.pk, rejected.pk} <= set(archived)
    assert not {open_adjustment.pk, failed_story.pk, unknown.pk, young.pk} & set(archived)
    fields = archived[rejected.pk]
    assert (fields["title"], fields["data"], fields["level"]) == (
        rejected.title,
        rejected.data,
        rejected.level,
    )
    assert dt.datetime.fromisoformat(fields["created_at"]) == rejected.created_at
    # The run itself is on record, with its counts and files.
    run = Event.objects.get(title=EventTitle.RECORDS_ARCHIVED)
    assert run.actor == "tester"
    assert run.data["callbacks"] == {
        "archived": len(ARCHIVABLE),
        "deleted": len(ARCHIVABLE),
        "file": str(report.callbacks.path),
    }
    assert run.data["events"]["deleted"] == report.events.deleted == len(archived)
    assert run.data["events"]["file"] == str(report.events.path)


def test_nothing_of_a_day_still_open_is_archived(tmp_path: Path) -> None:
    make_driver(1)
    with time_machine.travel(OLD, tick=False):
        pay("OPEN1", "1000")
    # 50 days on and nobody closed the driver's day: its events and callbacks stay.
    with time_machine.travel(NOW, tick=False):
        assert archive_cutoff(older_than_days=DAYS) == OLD.replace(hour=0)
        report = records_archive(older_than_days=DAYS, directory=tmp_path)
    assert (report.callbacks.archived, report.events.archived) == (0, 0)
    assert list(tmp_path.iterdir()) == []


def test_the_ledger_answers_the_same_after_archiving(tmp_path: Path) -> None:
    old_scenario()
    make_driver(2)
    with time_machine.travel(OLD, tick=False):
        pay("RC1", "1000", account="TUK002")
        pay("RC1", "1000", account="TUK002")  # a redelivery, shown as information
    with time_machine.travel(NOW, tick=False):
        day_close_run()
        pay("RC2", "700", account="TUK002")
        edit_balance_by_sql(
            Driver.objects.get(driver_id="DRV-112002"), "50"
        )  # a discrepancy to find, before and after
        everyone = reconcile_all_drivers_balances()
        one = reconcile_driver_balance("DRV-112002", date="2026-01-10")
        report = records_archive(older_than_days=DAYS, directory=tmp_path)
        assert report.callbacks.deleted == len(ARCHIVABLE)
        assert reconcile_all_drivers_balances() == everyone
        assert reconcile_driver_balance("DRV-112002", date="2026-01-10") == one
        assert everyone["drivers_with_discrepancies"] == 1
        edit_balance_by_sql(Driver.objects.get(driver_id="DRV-112002"), "-50")
        callbacks_replay()  # the two kept unprocessed callbacks ("{}") are rejected now
        assert_invariants()


def test_the_duplicates_report_of_recent_days_is_unchanged(tmp_path: Path) -> None:
    old_scenario()
    with time_machine.travel(NOW, tick=False):
        day_close_run()
        recent = duplicates_report().as_dict()
        old = duplicates_report(date_from="2026-01-10", date_to="2026-01-10")
        assert [d.trans_id for d in old.duplicates] == ["RET001"]
        records_archive(older_than_days=DAYS, directory=tmp_path)
        assert duplicates_report().as_dict() == recent
        # The archived days are in the files now, no longer in the report.
        assert duplicates_report(date_from="2026-01-10", date_to="2026-01-10").duplicates == []


def test_a_failed_write_deletes_nothing_and_is_on_record(tmp_path: Path) -> None:
    old_scenario()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with time_machine.travel(NOW, tick=False):
        day_close_run()
        callbacks, events_before = Callback.objects.count(), Event.objects.count()
        with pytest.raises(ArchiveError, match="Not a directory; nothing was deleted"):
            records_archive(older_than_days=DAYS, directory=blocker / "archive")
    assert Callback.objects.count() == callbacks
    failure = Event.objects.get(title=EventTitle.ARCHIVE_FAILED)
    assert failure.level == "error" and "Not a directory" in failure.message
    assert Event.objects.count() == events_before + 1


@pytest.fixture
def admin(db: None) -> User:
    return User.objects.create_superuser("root", password="pw-for-tests")


def test_cli_dry_run_changes_nothing_then_the_run_archives_once(
    tmp_path: Path, admin: User, capsys: pytest.CaptureFixture[str]
) -> None:
    old_scenario()
    with override_settings(ARCHIVE_DIR=tmp_path), time_machine.travel(NOW, tick=False):
        day_close_run()
        callbacks, event_count = Callback.objects.count(), Event.objects.count()
        call_command("archive", "--older-than", str(DAYS), "--dry-run")
        out = capsys.readouterr().out
        assert f"callbacks: would archive {len(ARCHIVABLE)}" in out
        assert (Callback.objects.count(), Event.objects.count()) == (callbacks, event_count)
        assert list(tmp_path.iterdir()) == []

        with pytest.raises(CommandError, match="who is acting"):
            call_command("archive", "--older-than", str(DAYS))
        User.objects.create_user("clerk")
        with pytest.raises(CommandError, match=r"needs mpesa\.delete_callback") as refused:
            call_command("archive", "--older-than", str(DAYS), "--user", "clerk")
        assert refused.value.returncode == 4
        assert Callback.objects.count() == callbacks

        call_command("archive", "--older-than", str(DAYS), "--user", "root", "--json")
        first = json.loads(capsys.readouterr().out)
        assert first["callbacks"]["deleted"] == len(ARCHIVABLE)
        assert Callback.objects.count() == len(NEEDED)
        call_command("archive", "--older-than", str(DAYS), "--user", "root", "--json")
        second = json.loads(capsys.readouterr().out)
    assert second["callbacks"] == {"archived": 0, "deleted": 0, "file": None}
    assert second["events"] == {"archived": 0, "deleted": 0, "file": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        Path(first[t]["file"]).name for t in ("callbacks", "events")
    )


def test_cli_refuses_a_zero_age_and_says_an_unwritable_dir(tmp_path: Path, admin: User) -> None:
    with pytest.raises(CommandError, match="at least 1 day") as zero:
        call_command("archive", "--older-than", "0", "--user", "root")
    assert zero.value.returncode == 2
    old_scenario()
    (tmp_path / "file").write_text("")
    with (
        override_settings(ARCHIVE_DIR=tmp_path / "file" / "archive"),
        time_machine.travel(NOW, tick=False),
    ):
        day_close_run()
        with pytest.raises(CommandError, match="cannot write the callbacks archive"):
            call_command("archive", "--older-than", str(DAYS), "--user", "root")


def test_loaddata_puts_an_archive_back(tmp_path: Path) -> None:
    made = old_scenario()
    with time_machine.travel(NOW, tick=False):
        day_close_run()
        rows = {
            made[n].pk: Callback.objects.filter(pk=made[n].pk).values().get() for n in ARCHIVABLE
        }
        report = records_archive(older_than_days=DAYS, directory=tmp_path)
    assert report.callbacks.path is not None
    call_command("loaddata", str(report.callbacks.path), verbosity=0)
    assert {pk: Callback.objects.filter(pk=pk).values().get() for pk in rows} == rows


def test_the_worker_archives_once_a_day(tmp_path: Path) -> None:
    old_scenario()
    with override_settings(ARCHIVE_DIR=tmp_path, RETENTION_DAYS=DAYS):
        with time_machine.travel(NOW, tick=False):
            first = worker_tick(WorkerState())
            again = worker_tick(WorkerState())
        with time_machine.travel(NOW + dt.timedelta(days=1, minutes=1), tick=False):
            next_day = worker_tick(WorkerState())
    # The first pass closed the due days and replayed the failed confirmation (its "{}" body
    # is rejected) before archiving, so it could go as well; the B2C result still to process
    # stays.
    assert first["replayed"] == {"rejected": 1}
    assert first["archive"]["callbacks"]["deleted"] == len(ARCHIVABLE) + 1
    assert "archive" not in again
    assert next_day["archive"]["callbacks"]["archived"] == 0
    assert Event.objects.filter(title=EventTitle.RECORDS_ARCHIVED, actor="worker").count() == 2


def test_a_failing_archive_does_not_stop_the_worker(tmp_path: Path) -> None:
    old_scenario()
    (tmp_path / "file").write_text("")
    with (
        override_settings(ARCHIVE_DIR=tmp_path / "file" / "archive", RETENTION_DAYS=DAYS),
        time_machine.travel(NOW, tick=False),
    ):
        report = worker_tick(WorkerState())
    assert "Not a directory" in report["archive"]["failed"]
    assert report["closed"] > 0  # the day close still ran
    assert Event.objects.filter(title=EventTitle.ARCHIVE_FAILED).count() == 1
