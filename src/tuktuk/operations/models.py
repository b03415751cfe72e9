"""The event log (the legacy "Error Log"): what happened to money, and who did it."""

from __future__ import annotations

from django.db import models

from tuktuk.fleet.models import Driver


class EventLevel(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class Event(models.Model):
    level = models.CharField(max_length=8, choices=EventLevel.choices, default=EventLevel.INFO)
    title = models.CharField(max_length=120, db_index=True)
    message = models.TextField(blank=True)
    driver = models.ForeignKey(
        Driver, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    data = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"[{self.level}] {self.title}"
