from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "tuktuk.core"
    label = "core"
    verbose_name = "Event log"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tuktuk.core.lookups import lookups_register

        lookups_register()
