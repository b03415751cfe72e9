"""Words for the emoji of the legacy messages, on the admin's pages."""

from __future__ import annotations

# The legacy messages keep their emoji for the JSON API; a page shows words instead, since a
# font may lack the emoji (an empty box where the answer should be).
PLAIN_LABELS = [("✅", "OK:"), ("⚠️", "Warning:"), ("⚠", "Warning:"), ("❌", "Error:")]


def plain_text(message: str) -> str:
    """A legacy message with its emoji as text labels ("✅ Balance fixed" → "OK: Balance fixed")."""
    text = str(message)
    for emoji, label in PLAIN_LABELS:
        text = text.replace(emoji, label)
    return text
