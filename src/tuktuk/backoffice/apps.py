from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    name = "tuktuk.backoffice"
    label = "backoffice"
    verbose_name = "Back office"
    default_auto_field = "django.db.models.BigAutoField"
