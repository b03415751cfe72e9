"""The M-Pesa side: the raw callback inbox and the B2C payout outbox."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Cast
from django.db.models.lookups import Exact

from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import Transaction
from tuktuk.money import MoneyField


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
    trans_id = models.CharField(max_length=64, blank=True, db_index=True)
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
        indexes = [models.Index(fields=["kind", "state"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.trans_id or '-'} {self.state}"


class PayoutState(models.TextChoices):
    HELD = "held", "Held (instant payouts off)"
    PENDING = "pending", "Pending"
    # Claimed by a worker, request in flight. A worker killed here leaves the row "sending";
    # after a timeout it becomes "unknown" (the request may have reached M-Pesa).
    SENDING = "sending", "Sending"
    SUBMITTED = "submitted", "Submitted"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Unknown (needs status check)"


class PayoutKind(models.TextChoices):
    SHARE = "share", "Driver share"
    BONUS = "bonus", "Target bonus"


class Payout(models.Model):
    """Outbox row for one B2C transfer. At most one per payment (invariant 5)."""

    kind = models.CharField(max_length=8, choices=PayoutKind.choices, default=PayoutKind.SHARE)
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="payout"
    )
    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="payouts")
    phone = models.CharField(max_length=12)
    amount = MoneyField()
    state = models.CharField(max_length=10, choices=PayoutState.choices)
    originator_conversation_id = models.CharField(max_length=64, unique=True)
    conversation_id = models.CharField(max_length=64, blank=True, db_index=True)
    receipt = models.CharField(max_length=32, blank=True)
    result_code = models.CharField(max_length=32, blank=True)
    result_desc = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    status_queried_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    failure_alerted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payout_amount_positive"),
            models.CheckConstraint(
                condition=Exact(F("amount"), Cast("amount", models.IntegerField())),
                name="payout_whole_shillings",
            ),
            models.CheckConstraint(
                condition=Q(state__in=PayoutState.values), name="payout_state_choice"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.originator_conversation_id} {self.amount} {self.state}"
