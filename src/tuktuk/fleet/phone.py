"""Kenyan M-Pesa numbers, normalised to Daraja's 12-digit form: 2547XXXXXXXX / 2541XXXXXXXX."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-().]")
_CANONICAL = re.compile(r"^254[17][0-9]{8}$")  # [0-9], not \d: no Arabic-Indic digits


class InvalidPhoneNumber(ValueError):
    pass


def normalize_msisdn(raw: str) -> str:
    """Accept +2547…, 2547…, 07…, 01… (and 2541/+2541); return 2547XXXXXXXX or 2541XXXXXXXX."""
    text = _SEPARATORS.sub("", str(raw or "").strip())
    if text.startswith("+254"):
        text = text[1:]
    if text.startswith("0") and len(text) == 10:
        text = "254" + text[1:]
    if not _CANONICAL.match(text):
        raise InvalidPhoneNumber(
            f"{raw!r} is not a Kenyan mobile number (expected +2547XXXXXXXX, 07XXXXXXXX, "
            "2547XXXXXXXX or 01XXXXXXXX)"
        )
    return text


def is_canonical_msisdn(value: str) -> bool:
    return bool(_CANONICAL.match(value))
