"""The edges of who drives today (issue 11), shared by the CLI, the API and the admin: what
operators type (weekdays, handover moments, a substitute's target and fare percentage), read
once, each refusal an InvalidInput (400 / exit 2) saying what was expected (the services check
the rest); and an assignment as one line of text."""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone

from tuktuk.core.dates import DAY_MAX, DAY_MIN, moment_parse
from tuktuk.core.errors import InvalidInput
from tuktuk.core.money import CENT, operator_amount
from tuktuk.ledger.duty import WEEKDAYS

# mon … sun as typed on the CLI; the admin and the API show the full names.
WEEKDAY_KEYS = tuple(name[:3].lower() for name in WEEKDAYS)
NO_WEEKDAY = "none"
# The longest reason a day off keeps (DayOff.reason), and the longest name (Driver.name).
DAY_OFF_REASON_MAX_LENGTH = 255
NAME_MAX_LENGTH = 120


def weekday_parse(text: str) -> int | None:
    """mon … sun (or the full name, any case) → 0 … 6; "none" → None."""
    key = str(text).strip().lower()
    if key == NO_WEEKDAY:
        return None
    for number, name in enumerate(WEEKDAYS):
        if key in (WEEKDAY_KEYS[number], name.lower()):
            return number
    raise InvalidInput(
        f"the preferred day off is one of {', '.join(WEEKDAY_KEYS)} or {NO_WEEKDAY}, "
        f"not {str(text)[:40]!r}"
    )


def weekday_name(weekday: int | None) -> str:
    return NO_WEEKDAY if weekday is None else WEEKDAYS[weekday]


def substitute_name_arg(text: str) -> str:
    """A substitute's name: one line of at most NAME_MAX_LENGTH characters."""
    name = str(text).strip()
    if not name:
        raise InvalidInput("a substitute needs a name")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(f"a name is at most {NAME_MAX_LENGTH} characters")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in name):
        raise InvalidInput("a name must not contain control characters")
    return name


def day_off_reason_arg(text: str) -> str:
    if len(text) > DAY_OFF_REASON_MAX_LENGTH:
        raise InvalidInput(f"a day off's reason is at most {DAY_OFF_REASON_MAX_LENGTH} characters")
    return text


def moment_arg(value: str | dt.datetime, *, name: str = "at") -> dt.datetime:
    """A handover moment: YYYYMMDDHHMMSS or ISO 8601 (local time without an offset), within
    the days the ledger knows (DAY_MIN .. DAY_MAX, where its day arithmetic is safe)."""
    moment = moment_parse(value, name=name)
    # The year first: converting a moment of year 1 or 9999 to local time could overflow.
    if not (
        DAY_MIN.year <= moment.year <= DAY_MAX.year
        and DAY_MIN <= timezone.localtime(moment).date() <= DAY_MAX
    ):
        raise InvalidInput(f"{name} {value!s:.40} is outside {DAY_MIN} .. {DAY_MAX}")
    return moment


def daily_target_arg(value: str | Decimal | None) -> Decimal | None:
    """A substitute's own daily target: empty for the fleet's, else an amount (0: the fleet's)."""
    if value is None or not str(value).strip():
        return None
    if _number(value, name="daily target") == 0:
        return Decimal("0.00")
    return operator_amount(value)


def fare_percentage_arg(value: str | Decimal | None) -> Decimal | None:
    """A substitute's own fare percentage: empty for the fleet's, else 0 to 100, two decimals
    at most."""
    if value is None or not str(value).strip():
        return None
    number = _number(value, name="fare percentage")
    if not Decimal(0) <= number <= Decimal(100):
        raise InvalidInput(f"the fare percentage is between 0 and 100, not {value}")
    if number != number.quantize(CENT):
        raise InvalidInput(f"fare percentage {value} has more than 2 decimals")
    return number.quantize(CENT)


def _number(value: str | Decimal, *, name: str) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise InvalidInput(f"{name} {str(value)[:40]!r} is not a number") from exc
    if not number.is_finite():
        raise InvalidInput(f"{name} {str(value)[:40]!r} is not a number")
    return number


def moment_text(moment: dt.datetime | None, *, empty: str) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}" if moment is not None else empty


def assignment_line(row: dict[str, Any]) -> str:
    """One row of backoffice.selectors.assignment_dict, as the CLI prints it."""
    kind = "substitute" if row["substitute"] else "driver"
    span = (
        f"{moment_text(row['starts_at'], empty='(before history)'):16} → "
        f"{moment_text(row['ends_at'], empty='now'):16}"
    )
    by = f" by {row['created_by']}" if row["created_by"] else ""
    ended = f", ended by {row['ended_by']}" if row["ended_by"] else ""
    reason = f": {row['reason']}" if row["reason"] else ""
    return (
        f"{row['vehicle_id']:10} {row['driver_id']} {kind:10} {span}  "
        f"{row['driver_name']}{by}{ended}{reason}"
    )
