"""FleetSettings.load() reads the row once per process and keeps it (tuktuk.fleet.settings_cache).

The suite runs with the cache off (tests/conftest.py); these tests turn it on. They commit
(transactional_db): the cache is dropped when a change commits, and a test transaction that is
rolled back at the end never commits. Its time is a fake clock the tests move, never a sleep.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TypeVar

import pytest
import time_machine
from django.db import connection, transaction
from pytest_django import DjangoAssertNumQueries
from pytest_django.fixtures import Settings

from tuktuk.fleet import settings_cache as settings_cache_module
from tuktuk.fleet.models import FleetSettings, settings_cache
from tuktuk.fleet.settings_cache import RowCache

T = TypeVar("T")
REAL_CLOCK = settings_cache_module.clock  # before the tests replace it
EXPIRY = 5
DEFAULT_TARGET = Decimal("3000.00")
NEW_TARGET = Decimal("4000.00")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(settings_cache_module, "clock", fake)
    return fake


@pytest.fixture
def cache_on(transactional_db: None, settings: Settings) -> Iterator[None]:
    """The cache on, empty, over a committed settings row with the defaults."""
    settings.FLEET_SETTINGS_CACHE_SECONDS = EXPIRY
    FleetSettings.load()
    settings_cache.invalidate()
    yield
    settings_cache.invalidate()  # the next test's tables are emptied behind the cache's back


def in_other_thread(work: Callable[[], T]) -> T:
    """Run work on another thread, hence on another database connection."""

    def run() -> T:
        try:
            return work()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result(timeout=60)


def sql_update_target(amount: Decimal) -> None:
    """What another process (or someone at a SQL prompt) does: no ORM, no signal."""

    def update() -> None:
        with connection.cursor() as cursor:
            table = connection.ops.quote_name(FleetSettings._meta.db_table)
            cursor.execute(f"UPDATE {table} SET global_daily_target = %s", [amount])

    in_other_thread(update)


def target() -> Decimal:
    return FleetSettings.load().global_daily_target


pytestmark = pytest.mark.usefixtures("cache_on", "clock")


def test_the_second_load_does_no_query(django_assert_num_queries: DjangoAssertNumQueries) -> None:
    with django_assert_num_queries(1):
        FleetSettings.load()
    with django_assert_num_queries(0):
        assert target() == DEFAULT_TARGET


def save(changed: FleetSettings) -> None:
    changed.global_daily_target = NEW_TARGET
    changed.save()


def update_queryset(_: FleetSettings) -> None:
    # The legacy import's way (backoffice.legacy_import): no signal is sent.
    FleetSettings.objects.filter(pk=FleetSettings.SINGLETON_ID).update(
        global_daily_target=NEW_TARGET
    )


@pytest.mark.parametrize("change", [save, update_queryset])
def test_a_change_made_here_is_seen_by_the_next_load(
    change: Callable[[FleetSettings], None], django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    loaded = FleetSettings.load()
    change(loaded)
    assert target() == NEW_TARGET  # the clock has not moved: no expiry helped
    with django_assert_num_queries(0):
        assert target() == NEW_TARGET


def test_a_deleted_row_is_not_served() -> None:
    FleetSettings.objects.update(global_daily_target=NEW_TARGET)
    assert target() == NEW_TARGET
    FleetSettings.objects.all().delete()
    assert target() == DEFAULT_TARGET  # the row made again, with the defaults


def test_a_change_is_served_to_others_only_once_committed() -> None:
    assert target() == DEFAULT_TARGET
    with transaction.atomic():
        save(FleetSettings.load())
        assert target() == NEW_TARGET  # the transaction sees its own change, as without a cache
        # Another thread of this process (another request) must not get the uncommitted row.
        assert in_other_thread(target) == DEFAULT_TARGET
    assert target() == NEW_TARGET
    assert in_other_thread(target) == NEW_TARGET


def test_a_rolled_back_change_is_never_served(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    assert target() == DEFAULT_TARGET

    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        save(FleetSettings.load())
        assert target() == NEW_TARGET
        raise Undo
    with django_assert_num_queries(0):  # still cached: the rollback changed nothing
        assert target() == DEFAULT_TARGET
    settings_cache.invalidate()
    assert target() == DEFAULT_TARGET  # and that is what the database says


def test_a_change_in_a_rolled_back_savepoint_is_never_served() -> None:
    assert target() == DEFAULT_TARGET
    with transaction.atomic():
        try:
            with transaction.atomic():
                save(FleetSettings.load())
                assert target() == NEW_TARGET
                raise RuntimeError("undo the savepoint")
        except RuntimeError:
            pass
        assert target() == DEFAULT_TARGET
    assert target() == DEFAULT_TARGET
    assert in_other_thread(target) == DEFAULT_TARGET


def test_a_change_made_elsewhere_is_seen_after_the_expiry_and_not_before(
    clock: FakeClock, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    assert target() == DEFAULT_TARGET  # loaded at 1000
    sql_update_target(NEW_TARGET)
    clock.now = 1000 + EXPIRY - 0.01
    with django_assert_num_queries(0):
        assert target() == DEFAULT_TARGET  # cached: this process was not told
    clock.now = 1000 + EXPIRY
    assert target() == NEW_TARGET
    with django_assert_num_queries(0):
        assert target() == NEW_TARGET  # and cached again


def test_a_clock_that_went_backwards_expires_the_copy(clock: FakeClock) -> None:
    assert target() == DEFAULT_TARGET
    sql_update_target(NEW_TARGET)
    clock.now -= 1
    assert target() == NEW_TARGET


def test_the_expiry_does_not_follow_the_wall_clock(
    monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    monkeypatch.setattr(settings_cache_module, "clock", REAL_CLOCK)
    assert target() == DEFAULT_TARGET
    for moment in [dt.datetime(2040, 1, 1, tzinfo=dt.UTC), dt.datetime(2001, 1, 1, tzinfo=dt.UTC)]:
        with time_machine.travel(moment, tick=False), django_assert_num_queries(0):
            assert target() == DEFAULT_TARGET


def test_zero_turns_the_cache_off(
    settings: Settings, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    assert target() == DEFAULT_TARGET  # cached
    settings.FLEET_SETTINGS_CACHE_SECONDS = 0
    sql_update_target(NEW_TARGET)
    with django_assert_num_queries(1):
        assert target() == NEW_TARGET


def test_changing_a_loaded_instance_changes_no_other_load(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    first = FleetSettings.load()  # read from the database
    second = FleetSettings.load()  # from the cache
    for loaded in [first, second]:
        loaded.global_daily_target = Decimal("1.00")
        loaded.operating_hours_end = dt.time(12, 0)
    with django_assert_num_queries(0):
        again = FleetSettings.load()
    assert again.global_daily_target == DEFAULT_TARGET
    assert again.operating_hours_end == dt.time(0, 0)
    assert again is not FleetSettings.load()


def test_a_read_under_way_when_a_change_commits_is_not_kept() -> None:
    """A load that read the row before another thread's change committed must not store it
    after that commit dropped the cache (it would serve the old row until the expiry)."""
    cache: RowCache[FleetSettings] = RowCache()
    reads: list[int] = []

    def read_while_a_change_commits() -> FleetSettings:
        reads.append(1)
        row = FleetSettings.objects.get()
        if len(reads) == 1:
            cache.invalidate()  # what the other thread's commit does, after this read
        return row

    cache.get(read_while_a_change_commits, seconds=EXPIRY)
    cache.get(read_while_a_change_commits, seconds=EXPIRY)
    assert len(reads) == 2
    cache.get(read_while_a_change_commits, seconds=EXPIRY)
    assert len(reads) == 2  # an undisturbed read is kept
