"""Message texts from the fleet's templates.

A template names values in braces, `{amount}`; only lower-case names are placeholders, and one
a message does not know is left as typed (so an operator sees the mistake in the message log
rather than losing the message). Deliberately not `str.format`: a template typed by an operator
must not reach attributes of the values (`{amount.__class__}`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from tuktuk.core.money import format_ksh

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# An SMS over 160 GSM characters is sent (and billed) as several; past this it is cut.
MAX_LENGTH = 459


def render(template: str, values: Mapping[str, object]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        return format_ksh(value) if isinstance(value, Decimal) else str(value)

    return _PLACEHOLDER.sub(one, template).strip()[:MAX_LENGTH]


def login_code_text(code: str, *, minutes: int) -> str:
    return f"TukTuk Ledger code: {code}. It works for {minutes} minutes. Never share it."


LOGIN_CODE_REDACTED = "TukTuk Ledger code: ******. (one-time code, hidden once sent)"
