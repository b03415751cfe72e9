"""JSON callback bodies read so that no body can mean two things, and no text in them is
something a database refuses to store.

Python's `json` takes the last of two equal keys, turns a number of any length into an int
(and refuses more than 4,300 digits with a bare ValueError), accepts NaN and Infinity, and
decodes an escaped lone surrogate ("\\ud800", plain ASCII on the wire) into a str that SQLite,
PostgreSQL and MariaDB all refuse. Here each of those is a rejection with a reason, and every
number is kept as the literal text it was written as.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_SHOWN_LIMIT = 40
# Where a decoded str can get a lone surrogate from: an escape of one, \ud800 to \udfff.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]", re.ASCII)


class JsonRejected(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class JsonNumber:
    """A JSON number as written (ASCII digits only: the JSON grammar allows nothing else)."""

    literal: str


def shown(text: str) -> str:
    """`text` fit for a rejection reason: as is when short and printable, else escaped
    (a lone surrogate or a control character in a reason would make the reason unstorable)."""
    if len(text) <= _SHOWN_LIMIT and text.isprintable():
        return text
    return ascii(text[:_SHOWN_LIMIT]) + ("..." if len(text) > _SHOWN_LIMIT else "")


def has_lone_surrogate(text: str) -> bool:
    # A proper pair was already joined into one character by the decoder; what remains is lone.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JsonRejected(f"{shown(key)} appears more than once")
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise JsonRejected(f"body is not JSON: {name} is not a JSON number")


def _refuse_lone_surrogates(value: Any) -> None:
    # Iterative: the decoder allows nesting deeper than Python's recursion limit.
    pending: list[tuple[str, Any]] = [("body", value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            if has_lone_surrogate(item):
                raise JsonRejected(
                    f"{shown(where)} contains a lone surrogate, text that cannot be stored"
                )
        elif isinstance(item, dict):
            for key, child in item.items():
                if has_lone_surrogate(key):
                    raise JsonRejected(
                        f"a key ({shown(key)}) contains a lone surrogate, text that cannot be "
                        "stored"
                    )
                pending.append((key, child))
        elif isinstance(item, list):
            pending.extend((where, child) for child in item)


def loads(text: str) -> Any:
    """Decode `text`; objects are dicts, numbers JsonNumber, strings storable str."""
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object,
            parse_int=JsonNumber,
            parse_float=JsonNumber,
            parse_constant=_constant,
        )
    except JsonRejected:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise JsonRejected(f"body is not JSON: {exc}") from exc
    # Walking every string of the body costs more than the decoding: done only when the text
    # holds a surrogate, raw or escaped (an escaped backslash before "ud800" walks for nothing).
    if has_lone_surrogate(text) or _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(value)
    return value
