from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The driver portal: driver accounts (M-Pesa number and PIN), one-time login codes, the
    phone-first pages and the problem reports. An app of its own inside the back office layer
    (its own migrations)."""

    name = "tuktuk.backoffice.portal"
    label = "portal"
    verbose_name = "Driver portal"
    default_auto_field = "django.db.models.BigAutoField"
