from django.apps import AppConfig


class MpesaConfig(AppConfig):
    name = "tuktuk.mpesa"
    label = "mpesa"
    verbose_name = "M-Pesa"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Missed payments are verified with Daraja's Transaction Status query when Daraja is
        # configured; the ledger asks through a port it owns.
        from tuktuk.ledger import ports
        from tuktuk.mpesa import daraja
        from tuktuk.mpesa.callbacks import StoredConfirmations

        ports.receipt_verifier_install(daraja.receipt_verifier_when_configured)
        # A day close waits for the confirmations stored before its cutoff.
        ports.confirmation_inbox_install(StoredConfirmations())
