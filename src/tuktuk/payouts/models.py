"""The payout outbox: one row per transfer to a driver, whatever the provider (M-Pesa B2C today).

Rows are created inside the posting transaction (through the ledger's PayoutOutbox port) and
sent by a worker outside any transaction, through a PayoutGateway.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Cast
from django.db.models.lookups import Exact

from tuktuk.core.money import MoneyField
from tuktuk.fleet.models import Driver
from tuktuk.ledger.models import DepositRefund, Transaction


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
    REFUND = "refund", "Deposit refund"


class Payout(models.Model):
    """Outbox row for one B2C transfer. At most one per payment (invariant 5)."""

    kind = models.CharField(max_length=8, choices=PayoutKind.choices, default=PayoutKind.SHARE)
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="payout"
    )
    refund = models.OneToOneField(
        DepositRefund, null=True, blank=True, on_delete=models.PROTECT, related_name="payout"
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
        permissions = [("manage_payouts", "Can release, retry and resolve payouts")]
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
