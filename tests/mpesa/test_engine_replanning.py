"""The posting engine's new database session at doubling steps of what it credited
(mpesa.posting_engine.Replanning says why: generic plans made on an empty inbox)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from tests.support.db_sessions import session_id
from tests.support.engines import store
from tuktuk.mpesa.posting_engine import PassReport, Replanning, engine_drain

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the generic plans are PostgreSQL's"
)


def test_a_new_session_each_time_what_was_credited_doubles(transactional_db: None) -> None:
    replanning = Replanning()
    first = session_id()
    replanning.after(PassReport(posted=99))
    assert session_id() == first
    replanning.after(PassReport(claimed=1, posted=1))  # 100 credited
    second = session_id()
    assert second != first
    replanning.after(PassReport(posted=99))  # 199: the next step is at 200
    assert session_id() == second
    replanning.after(PassReport(posted=1))
    assert session_id() != second
    assert replanning.next_at == 400


def test_never_inside_a_transaction(transactional_db: None) -> None:
    replanning = Replanning()
    with transaction.atomic():
        first = session_id()
        replanning.after(PassReport(posted=500))
        assert session_id() == first  # the transaction goes on


def test_the_engine_drains_through_its_new_sessions(transactional_db: None) -> None:
    for number in range(150):
        store(f"QRP{number:07d}", "100")
    first = session_id()
    report = engine_drain(limit=40)
    assert report.posted == 150
    assert session_id() != first  # a new session after the first 100
