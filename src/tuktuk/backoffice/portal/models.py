"""Driver accounts (the portal's logins), one-time login codes, and the drivers' problem
reports (discrepancy cases for operators)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from tuktuk.core.money import MoneyField
from tuktuk.fleet.models import Driver


class DriverAccount(models.Model):
    """A driver's login: their M-Pesa number and a PIN. The PIN is the password of a Django
    user of its own (hashed by Django's password hashers), a member of the Drivers group, which
    holds no permission: it sees the portal's pages of its own driver and nothing else."""

    driver = models.OneToOneField(Driver, on_delete=models.PROTECT, related_name="portal_account")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="driver_account"
    )
    pin_set_at = models.DateTimeField(null=True, blank=True)
    pin_set_by = models.CharField(max_length=150, blank=True)
    # A PIN an operator set (and so knows): the driver chooses their own at the next login.
    must_change_pin = models.BooleanField(default=False)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["driver__driver_id"]
        permissions = [
            (
                "manage_driver_accounts",
                "Can set driver PINs, send drivers login codes and unlock drivers",
            )
        ]

    def __str__(self) -> str:
        return f"portal login of {self.driver}"


class LoginCode(models.Model):
    """A one-time code sent by SMS: the driver logs in with it once and chooses a PIN. Only its
    hash is kept."""

    account = models.ForeignKey(DriverAccount, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=256)
    sms_id = models.BigIntegerField(null=True, blank=True, help_text="the outbox message")
    requested_by = models.CharField(max_length=150, blank=True, help_text="driver or operator")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"login code for {self.account.driver_id} ({'used' if self.used_at else 'unused'})"


class ProblemState(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class ProblemReport(models.Model):
    """A driver's "report a problem": a discrepancy case for operators, with the driver's note
    and what the portal showed the driver at that moment."""

    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="problem_reports")
    note = models.TextField()
    trans_id = models.CharField(
        "fare", max_length=64, blank=True, help_text="The fare it is about, if any."
    )
    business_day = models.DateField(help_text="The driver's open business day when reported.")
    balance_shown = MoneyField(help_text="The balance the portal showed.")
    left_to_target_shown = MoneyField(help_text="Left to target, as the portal showed it.")
    state = models.CharField(max_length=10, choices=ProblemState.choices, default=ProblemState.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolution = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=ProblemState.values), name="problem_state_choice"
            ),
            models.CheckConstraint(
                condition=Q(state=ProblemState.OPEN) | Q(resolved_at__isnull=False),
                name="problem_resolved_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"problem {self.pk} of {self.driver_id}: {self.state}"
