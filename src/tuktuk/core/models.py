"""The event log (the legacy "Error Log"): what happened to money, and who did it."""

from __future__ import annotations

from django.db import models


class EventLevel(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class EventTitle(models.TextChoices):
    """Every title the application writes, in one place. The values are the legacy Error Log
    titles operators already search for; changing one breaks their saved searches."""

    DUPLICATE_PREVENTED = "Duplicate Transaction Prevented"
    DISCREPANCY_DETECTED = "Balance Discrepancy Detected"
    BALANCE_FIXED = "Balance Fixed"
    CALLBACK_REJECTED = "C2B Callback Rejected"
    CALLBACK_FAILED = "C2B Callback Processing Failed"
    UNMATCHED_PAYMENT = "Uncaptured Payment"
    UNCAPTURED_ASSIGNED = "Uncaptured Payment Assigned"
    DAY_CLOSED = "Day Closed"
    CREDITED_AFTER_CLOSE = "Payment Credited After Its Day Closed"
    TERMINATION_REVIEW = "Driver Flagged For Termination Review"
    ADJUSTMENT_RECORDED = "Adjustment Recorded"
    REPAYMENT_RECEIVED = "Driver Repayment Received"
    MISSED_RECORDED = "Missed Payment Recorded"
    MISSED_REJECTED = "Missed Payment Rejected"
    PAYOUT_FAILED = "Payout Failed"
    PAYOUT_UNKNOWN = "Payout Outcome Unknown"
    PAYOUT_COMPLETED = "Payout Completed"
    PAYOUTS_RELEASED = "Payouts Released"
    PAYOUT_RETRIED = "Payout Retried"
    PAYOUT_RESOLVED = "Payout Resolved By Operator"
    API_TOKEN_CREATED = "API Token Created"  # noqa: S105 - a title, not a secret
    API_TOKEN_REVOKED = "API Token Revoked"  # noqa: S105 - a title, not a secret
    ALERT_EMAIL_FAILED = "Alert Email Failed"
    RECORDS_ARCHIVED = "Records Archived"
    ARCHIVE_FAILED = "Archive Failed"
    CALLBACKS_REPLAYED = "Callbacks Replayed By Operator"
    DAYS_CLOSED_BY_OPERATOR = "Day Close Run By Operator"
    FLEET_IMPORTED = "Fleet Imported"
    PAYMENT_RECOVERED = "Missed Payment Recovered"
    PULL_RUN = "Pull Transactions Run"
    PULL_FAILED = "Pull Transactions Failed"
    PULL_ROW_SKIPPED = "Pull Transaction Skipped"
    SELF_PAYMENT_RECEIVED = "Driver Self Payment Received"
    DEPOSIT_RECORDED = "Deposit Recorded"
    DEPOSIT_DEDUCTED = "Deposit Deducted"
    DEPOSIT_SETTINGS_CHANGED = "Deposit Settings Changed"
    DEDUCTION_PROPOSED = "Deposit Deduction Proposed"
    DEDUCTION_APPROVED = "Deposit Deduction Approved"
    DEDUCTION_REJECTED = "Deposit Deduction Rejected"
    DRIVER_TERMINATED = "Driver Terminated"
    DRIVER_ARCHIVED = "Driver Archived"
    DRIVER_RESTORED = "Driver Restored"
    REFUND_APPROVED = "Deposit Refund Approved"
    REFUND_REJECTED = "Deposit Refund Rejected"
    MISSES_RESET = "Reset Consecutive Misses"
    FARE_ON_UNAVAILABLE_VEHICLE = "Fare Paid To An Unavailable Vehicle"
    VEHICLE_STATUS_CHANGED = "Vehicle Status Changed"
    VEHICLE_ASSIGNED = "Vehicle Assigned"
    SUBSTITUTE_ASSIGNED = "Substitute Assigned"
    SUBSTITUTE_ADDED = "Substitute Added"
    ROSTER_CHANGED = "Roster Changed"
    # Driver SMS and the driver portal (issue 14).
    SMS_QUEUED = "SMS Queued By Operator"
    SMS_RETRIED = "SMS Retried By Operator"
    SMS_GATEWAY_OUTAGE = "SMS Gateway Refusing Messages"
    DRIVER_PIN_SET = "Driver PIN Set"
    DRIVER_PIN_CHANGED = "Driver PIN Changed By Driver"
    DRIVER_LOGIN_CODE_SENT = "Driver Login Code Sent"
    DRIVER_UNLOCKED = "Driver Portal Unlocked"
    DRIVER_PROBLEM_REPORTED = "Driver Reported A Problem"
    DRIVER_PROBLEM_RESOLVED = "Driver Problem Resolved"


class Event(models.Model):
    """Not append-only in the database (no trigger, unlike the ledger tables): nothing updates
    an event, but the retention job deletes old ones once they are in a verified archive file
    (docs/design.md, "Retention"). Their history is kept in those files."""

    level = models.CharField(max_length=8, choices=EventLevel.choices, default=EventLevel.INFO)
    title = models.CharField(max_length=120, db_index=True, choices=EventTitle.choices)
    message = models.TextField(blank=True)
    # The driver's public id (DRV-112001), not a foreign key: the event log sits below the
    # fleet, and an event must outlive any change to the driver it names.
    driver = models.CharField("driver id", max_length=20, blank=True, db_index=True)
    data = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"[{self.level}] {self.title}"
