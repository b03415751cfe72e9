from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.db import connection
from hypothesis import HealthCheck, settings

from tests.support.live_server import LiveServer, live_server_process
from tuktuk.fleet.models import FleetSettings

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


@pytest.fixture
def live_server_proc(transactional_db: None) -> Iterator[LiveServer]:
    """Our real server (gunicorn) in another process, against the test database."""
    with live_server_process() as server:
        yield server
