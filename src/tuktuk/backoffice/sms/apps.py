from django.apps import AppConfig


class SmsConfig(AppConfig):
    """Driver SMS: the outbox, the provider-neutral gateway, Africa's Talking, the worker pass.
    An app of its own inside the back office layer (its own migrations)."""

    name = "tuktuk.backoffice.sms"
    label = "sms"
    verbose_name = "Driver SMS"
    default_auto_field = "django.db.models.BigAutoField"
