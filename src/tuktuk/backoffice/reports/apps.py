from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """The stored daily and weekly reports (docs/back-office.md). An app of its own inside the
    back office layer, with its own migrations."""

    name = "tuktuk.backoffice.reports"
    label = "reports"
    verbose_name = "Reports"
    default_auto_field = "django.db.models.BigAutoField"
