from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "tuktuk.payouts"
    label = "payouts"
    verbose_name = "Payouts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The ledger queues payouts through a port it owns; this layer fills it.
        from tuktuk.ledger import ports
        from tuktuk.payouts.outbox import OutboxForLedger

        ports.payout_outbox_install(OutboxForLedger())
