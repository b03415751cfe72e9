"""The M-Pesa side: the raw callback inbox (C2B confirmations, B2C and status results)."""

from __future__ import annotations

from django.db import models

from tuktuk.ledger.models import Transaction


class CallbackKind(models.TextChoices):
    C2B_VALIDATION = "c2b_validation", "C2B validation"
    C2B_CONFIRMATION = "c2b_confirmation", "C2B confirmation"
    B2C_RESULT = "b2c_result", "B2C result"
    B2C_TIMEOUT = "b2c_timeout", "B2C queue timeout"
    STATUS_RESULT = "status_result", "Transaction status result"
    STATUS_TIMEOUT = "status_timeout", "Transaction status timeout"


class CallbackState(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    DUPLICATE = "duplicate", "Duplicate (no-op)"
    UNMATCHED = "unmatched", "Unmatched account"
    ACCEPTED = "accepted", "Accepted (validation)"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed (to replay)"


class Callback(models.Model):
    """Every callback body, stored raw before it is processed (invariant 7)."""

    kind = models.CharField(max_length=24, choices=CallbackKind.choices)
    state = models.CharField(
        max_length=12, choices=CallbackState.choices, default=CallbackState.RECEIVED
    )
    body = models.TextField(blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True)
    # Indexed in Meta, not with db_index: PostgreSQL would get a second, LIKE-pattern index too,
    # one more entry for every stored and every posted confirmation, for a search never made.
    trans_id = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    result_code = models.CharField(max_length=16, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)
    transaction = models.ForeignKey(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="callbacks"
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["trans_id"], name="mpesa_callback_trans_id_idx"),
            # The posting engine's claim: unposted confirmations, oldest first. It serves every
            # search by kind and state too (a plain (kind, state) index, dropped in 0005, cost
            # one more index entry per stored and per posted confirmation).
            models.Index(fields=["kind", "state", "received_at"], name="mpesa_callback_inbox_idx"),
            # Credit latency (mpesa.selectors.credit_latency): the confirmations posted in a
            # window, read from the index alone.
            models.Index(
                fields=["kind", "state", "processed_at", "received_at"],
                name="mpesa_callback_latency_idx",
            ),
        ]
        permissions = [("replay_callbacks", "Can replay stored callbacks (credits money)")]

    def __str__(self) -> str:
        return f"{self.kind} {self.trans_id or '-'} {self.state}"
