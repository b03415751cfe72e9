from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.db import connection
from hypothesis import HealthCheck, settings

from tests.support.live_server import LiveServer, live_server_process
from tests.support.smtp import Inbox, smtp  # noqa: F401 - fixtures for every test module
from tuktuk.backoffice.roles import ACCOUNTANTS, FLEET_MANAGERS, roles_ensure
from tuktuk.fleet.models import FleetSettings

pytest_plugins = ["tests.support.clock_at"]  # --clock-at

# Most tests check what a posting does, so they post inline: the request (or the call) credits
# before it returns, in this process and in the servers they start. The posting engine's tests
# (tests/mpesa/test_posting_engine*.py, the concurrency tests' engine runs) ask for "engine".
os.environ.setdefault("TUKTUK_POSTING", "inline")
django_settings.POSTING_MODE = os.environ["TUKTUK_POSTING"]

# The fleet settings cache (tuktuk.fleet.settings_cache) is off for the suite, in this process
# and in the servers and engines the tests start (they inherit this environment). Its
# invalidation is exact only within the process that makes the change: tests change the
# settings here and at once expect a live server in another process to apply them, which with
# the cache on would pass or fail with the timing. And in this process the transactional tests'
# tables are emptied between tests by a flush, which no signal reports, so one test's settings
# would be served to the next. The cache's own tests (tests/fleet/test_settings_cache.py) turn
# it on for themselves.
os.environ.setdefault("TUKTUK_SETTINGS_CACHE_SECONDS", "0")
django_settings.FLEET_SETTINGS_CACHE_SECONDS = int(os.environ["TUKTUK_SETTINGS_CACHE_SECONDS"])

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("default")


def pytest_report_header(config: pytest.Config) -> str:
    return f"tuktuk test backend: {os.environ.get('TUKTUK_TEST_BACKEND', 'sqlite (default)')}"


@pytest.fixture
def fleet(db: None) -> FleetSettings:
    return FleetSettings.load()


@pytest.fixture
def vendor(db: None) -> str:
    return connection.vendor


@pytest.fixture(scope="session")
def _shared_live_server(django_db_setup: None, django_db_blocker: object) -> Iterator[LiveServer]:
    with live_server_process() as server:
        yield server


@pytest.fixture
def live_server_proc(_shared_live_server: LiveServer, transactional_db: None) -> LiveServer:
    """Our real server (gunicorn, 4 processes x 8 threads) against the test database.

    One server for the session; transactional_db commits each test's data so the server sees
    it, and empties the tables afterwards.
    """
    if _shared_live_server.process.poll() is not None:
        raise RuntimeError("the live server process has died")
    return _shared_live_server


@pytest.fixture
def connection_closed_after() -> Iterator[None]:
    """For a test that kills its own database session (tests.support.db_sessions): whatever
    happens, the next statement (the test database's flush, the next test) starts on a new
    connection."""
    yield
    connection.close()


@pytest.fixture
def people(transactional_db: None) -> dict[str, User]:
    """A fleet manager and an accountant, in their roles."""
    roles_ensure()  # transactional tests empty the tables, the roles' groups included
    manager = User.objects.create_user("manager", password="pw-for-tests", is_staff=True)
    manager.groups.add(Group.objects.get(name=FLEET_MANAGERS))
    accountant = User.objects.create_user("accountant", password="pw-for-tests", is_staff=True)
    accountant.groups.add(Group.objects.get(name=ACCOUNTANTS))
    return {"manager": manager, "accountant": accountant}


@pytest.fixture
def business_hours() -> Iterator[None]:
    """The clock pinned (and ticking) at 10:00 Africa/Nairobi on a fixed day, for tests whose
    results would otherwise depend on the hour they run at (the business day, the day close)."""
    import time_machine

    from tests.support.clock import nairobi

    with time_machine.travel(nairobi(2026, 3, 10, 10), tick=True):
        yield
