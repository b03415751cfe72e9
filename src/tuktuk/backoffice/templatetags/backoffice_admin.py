"""Template filters of the admin pages."""

from __future__ import annotations

from django import template

from tuktuk.backoffice.plain_labels import plain_text

register = template.Library()


@register.filter(name="plain")
def plain(value: object) -> str:
    """A legacy message with text labels for its emoji (plain_labels.plain_text)."""
    return plain_text(str(value))
