"""Back-office records: API tokens and the schedule of periodic jobs."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiTokenKind(models.TextChoices):
    BEARER = "bearer", "Bearer token (/api/v1/)"
    # The legacy app's `Authorization: token <api_key>:<api_secret>` (/api/method/...).
    FRAPPE = "frappe", "Frappe API key and secret (/api/method/)"


class ApiToken(models.Model):
    """A bearer token for the JSON API, or a Frappe-style API key and secret for the legacy
    calls. Only the SHA-256 of the token (of `api_key:api_secret`) is kept: a database dump or a
    look over an operator's shoulder at the admin must not hand out API access."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    kind = models.CharField(
        max_length=8,
        choices=ApiTokenKind.choices,
        default=ApiTokenKind.BEARER,
        db_default=ApiTokenKind.BEARER,
        editable=False,
    )
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters of the token, enough to tell tokens apart in a list, too few to use.
    prefix = models.CharField(max_length=8, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        label = f" ({self.name})" if self.name else ""
        return f"{self.prefix}… {self.user}{label}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ScheduledRun(models.Model):
    """When a periodic job last ran. With several workers, the compare-and-swap on this row
    decides which one runs it (and sends its email)."""

    name = models.CharField(max_length=100, primary_key=True)
    last_run_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.last_run_at}"
