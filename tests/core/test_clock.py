"""core.clock: M-Pesa's TransTime read by fixed-width fields gives what strptime gives."""

from __future__ import annotations

import datetime as dt

from hypothesis import example, given
from hypothesis import strategies as st

from tuktuk.core.clock import MPESA_TIME_FORMAT, aware, mpesa_time_parse


def by_strptime(raw: str) -> dt.datetime | None:
    """The reference: what the parse did before, and what MPESA_TIME_FORMAT means."""
    if len(raw) != 14 or not raw.isascii() or not raw.isdigit():
        return None
    try:
        return aware(dt.datetime.strptime(raw, MPESA_TIME_FORMAT))
    except ValueError:
        return None


@given(st.text(alphabet="0123456789", min_size=14, max_size=14))
@example("20261201235959")
@example("20260229120000")  # not a leap year
@example("20240229120000")
@example("20261301000000")  # month 13
@example("20261200000000")  # day 0
@example("20261201240000")  # hour 24
@example("20261201235960")  # second 60, which strptime's %S takes
@example("00001201120000")  # year 0
def test_fourteen_digits_read_as_strptime_reads_them(raw: str) -> None:
    assert mpesa_time_parse(raw) == by_strptime(raw)


@given(st.text(min_size=0, max_size=16))
@example("2026120123595")  # 13 digits
@example("202612012359591")  # 15
@example("2026120123595９")  # a non-ASCII digit
@example("20261201 35959")
def test_anything_else_is_not_a_time(raw: str) -> None:
    assert mpesa_time_parse(raw) == by_strptime(raw)
