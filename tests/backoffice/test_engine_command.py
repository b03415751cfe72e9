"""`tuktuk engine`: on PostgreSQL its sessions plan each statement for its parameters
(mpesa.posting_engine.engine_sessions_plan_each_batch says why)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.backends.signals import connection_created

from tests.support.engines import store
from tuktuk.mpesa.posting_engine import _plan_for_each_batch

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="plan_cache_mode is PostgreSQL's"
)


def plan_cache_mode() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return str(cursor.fetchone()[0])


@pytest.fixture
def engine_process_state(transactional_db: None) -> Iterator[None]:
    """The command changes this process's sessions, as it would the engine's own process;
    put back for the tests that follow."""
    yield
    connection_created.disconnect(_plan_for_each_batch, dispatch_uid="tuktuk-engine-plans")
    with connection.cursor() as cursor:
        cursor.execute("RESET plan_cache_mode")


def test_the_engine_plans_each_batch_in_this_session_and_the_next(
    engine_process_state: None,
) -> None:
    assert plan_cache_mode() == "auto"  # the server's default: what the web workers keep
    store("QPC0000001", "100")
    out = StringIO()
    call_command("engine", "--until-empty", stdout=out)
    assert json.loads(out.getvalue())["claimed"] == 1
    assert plan_cache_mode() == "force_custom_plan"
    connection.close()  # a lost connection: the engine's next one is set the same way
    assert plan_cache_mode() == "force_custom_plan"
