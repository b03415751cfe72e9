"""The SMS outbox: one row per message to a driver, and the provider's delivery reports.

A row is queued (a unique `key` says what it is about, so deriving the same message twice, by
two workers or two passes, queues it once), claimed by one worker with a compare-and-swap to
`sending` right before its request, and recorded with the provider's answer. A row left
`sending` by a dead worker may have reached the provider: it becomes `unknown` and is never
sent again by itself (an operator may, with `tuktuk sms retry`).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from tuktuk.fleet.models import Driver


class SmsKind(models.TextChoices):
    FARE_CREDITED = "fare_credited", "Fare credited"
    PAYOUT_SENT = "payout_sent", "Payout sent"
    REMINDER = "reminder", "Target reminder"
    DAY_CLOSE = "day_close", "Day-close summary"
    BROADCAST = "broadcast", "Broadcast"
    DIRECT = "direct", "Operator message"
    LOGIN_CODE = "login_code", "Portal login code"


# Sent even to a driver who opted out: the driver asked for it, just now.
TRANSACTIONAL_KINDS = frozenset({SmsKind.LOGIN_CODE})


class SmsState(models.TextChoices):
    QUEUED = "queued", "Queued"
    # Claimed by a worker, request in flight. A worker killed here leaves the row "sending";
    # after a timeout it becomes "unknown" (the request may have reached the provider).
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent (accepted by the provider)"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Unknown (may have been sent; never resent by itself)"
    SKIPPED = "skipped", "Skipped (opted out)"


FINAL_STATES = frozenset({SmsState.DELIVERED, SmsState.FAILED, SmsState.SKIPPED})


class SmsMessage(models.Model):
    kind = models.CharField(max_length=16, choices=SmsKind.choices)
    driver = models.ForeignKey(
        Driver, null=True, blank=True, on_delete=models.PROTECT, related_name="sms_messages"
    )
    phone = models.CharField(max_length=12, help_text="2547XXXXXXXX / 2541XXXXXXXX")
    body = models.TextField()
    # What the message is about, e.g. "fare:QB12XYZ789", "reminder:17:2026-03-10:1300".
    key = models.CharField(max_length=150, unique=True)
    state = models.CharField(max_length=10, choices=SmsState.choices, default=SmsState.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(help_text="Given up if still not sent by then.")
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    gateway = models.CharField(max_length=20, blank=True)
    provider_message_id = models.CharField(max_length=100, blank=True, db_index=True)
    provider_status = models.CharField(max_length=50, blank=True)
    provider_status_code = models.CharField(max_length=10, blank=True)
    cost = models.CharField(max_length=30, blank=True)
    network_code = models.CharField(max_length=20, blank=True)
    detail = models.TextField(blank=True, help_text="The last answer or error, in words.")
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "SMS message"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        permissions = [("send_sms", "Can send, broadcast and retry SMS to drivers")]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=SmsState.values), name="sms_state_choice"),
            models.CheckConstraint(condition=Q(kind__in=SmsKind.values), name="sms_kind_choice"),
        ]

    def __str__(self) -> str:
        return f"SMS {self.pk} {self.kind} to {self.phone}: {self.state}"


class DeliveryReport(models.Model):
    """A delivery report as the provider posted it, stored before it is applied (it may arrive
    before the worker has recorded the provider's message id; the worker applies it then)."""

    provider_message_id = models.CharField(max_length=100, db_index=True)
    status = models.CharField(max_length=50)
    phone_number = models.CharField(max_length=32, blank=True)
    network_code = models.CharField(max_length=20, blank=True)
    failure_reason = models.CharField(max_length=100, blank=True)
    retry_count = models.CharField(max_length=10, blank=True)
    body = models.TextField(help_text="The form body as received.")
    message = models.ForeignKey(
        SmsMessage,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="delivery_reports",
    )
    received_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider_message_id}: {self.status}"
