from django.apps import AppConfig


class MpesaConfig(AppConfig):
    name = "tuktuk.mpesa"
    label = "mpesa"
    default_auto_field = "django.db.models.BigAutoField"
