"""Days typed by people stay within the ledger's range; date-times are written with offsets that
ISO 8601 / RFC 3339 parsers accept."""

from __future__ import annotations

import datetime as dt
import json
import re
from zoneinfo import ZoneInfo

import pytest

from tuktuk.core import jsonutil
from tuktuk.core.dates import DAY_MAX, DAY_MIN, DAY_PATTERN, day_parse
from tuktuk.core.errors import InvalidInput

NAIROBI = ZoneInfo("Africa/Nairobi")
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


@pytest.mark.parametrize("text", ["0001-01-01", "9999-12-31", "1999-12-31", "2101-01-01"])
def test_a_day_outside_the_range_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape("outside 2000-01-01 .. 2100-12-31")):
        day_parse(text, name="from")
    with pytest.raises(InvalidInput, match="outside"):
        day_parse(dt.date.fromisoformat(text))


def test_the_range_edges_are_days_and_the_pattern_says_the_same() -> None:
    assert day_parse("2000-01-01") == DAY_MIN and day_parse("2100-12-31") == DAY_MAX
    for text in ("2000-01-01", "2100-12-31", "2026-02-28", "2099-12-31"):
        assert re.fullmatch(DAY_PATTERN, text)
    for text in ("1999-12-31", "2101-01-01", "0361-01-01", "2026-13-01", "2026-01-32"):
        assert not re.fullmatch(DAY_PATTERN, text)


def test_a_local_mean_time_offset_is_written_in_utc() -> None:
    # Before 1928 the zone database gives Nairobi +02:27:16, which isoformat() writes as is.
    moment = dt.datetime(361, 1, 1, tzinfo=NAIROBI)
    assert moment.isoformat().endswith("+02:27:16")
    written = json.loads(jsonutil.dumps({"at": moment}))["at"]
    assert RFC3339.fullmatch(written), written
    assert dt.datetime.fromisoformat(written) == moment
    # An ordinary moment keeps its local offset.
    now = dt.datetime(2026, 12, 2, 8, 30, tzinfo=NAIROBI)
    assert json.loads(jsonutil.dumps({"at": now}))["at"] == "2026-12-02T08:30:00+03:00"
