"""A report stored once per period, after the period's last business day has closed."""

from __future__ import annotations

from django.db import models


class ReportKind(models.TextChoices):
    DAILY = "daily", "Daily report"
    WEEKLY = "weekly", "Weekly report"


class StoredReport(models.Model):
    kind = models.CharField(max_length=8, choices=ReportKind.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    # The report as data (tuktuk.backoffice.reports.services): amounts as strings, never floats.
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    emailed_to = models.TextField(blank=True)

    class Meta:
        ordering = ["-period_start", "kind"]
        constraints = [
            # Exactly once per period, whichever worker gets there first.
            models.UniqueConstraint(fields=["kind", "period_start"], name="report_once"),
            models.CheckConstraint(
                condition=models.Q(kind__in=ReportKind.values), name="report_kind_choice"
            ),
        ]

    def __str__(self) -> str:
        if self.kind == ReportKind.DAILY:
            return f"Daily report {self.period_start}"
        return f"Weekly report {self.period_start} to {self.period_end}"
