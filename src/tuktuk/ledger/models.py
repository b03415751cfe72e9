"""Transactions and the append-only ledger that explains every driver balance."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Abs, Cast
from django.db.models.lookups import Exact, LessThan

from tuktuk.core.money import MoneyField
from tuktuk.fleet.models import Driver, Vehicle


class TransactionType(models.TextChoices):
    PAYMENT = "Payment", "Payment"
    ADJUSTMENT = "Adjustment", "Adjustment"
    DRIVER_REPAYMENT = "Driver Repayment", "Driver Repayment"
    # The driver paying the fleet with their own id as the account: today's shortfall (a
    # contribution entry), then open adjustments, then the deposit. Never a fare, no B2C.
    SELF_PAYMENT = "Self Payment", "Self Payment"


class TransactionStatus(models.TextChoices):
    COMPLETED = "Completed", "Completed"
    # Uncaptured: the account number matched no driver; kept until an operator assigns it.
    UNMATCHED = "Unmatched", "Unmatched"
    # History imported from the legacy app (tuktuk import-legacy): already credited there, so
    # it credits nothing here (its balance arrives as an explained opening entry); kept so a
    # late duplicate delivery of its TransID is recognised.
    IMPORTED = "Imported", "Imported from the legacy app (credits nothing)"


class TransactionSource(models.TextChoices):
    C2B = "c2b", "M-Pesa C2B callback"
    MISSED = "missed", "Recorded missed payment"
    OPERATOR = "operator", "Operator"
    PULL = "pull", "Recovered by the Pull Transactions query"
    # History imported from the legacy app (tuktuk import-legacy): kept so a late duplicate
    # delivery is recognised, never credited again (its balance arrives as an opening entry).
    LEGACY = "legacy", "Imported from the legacy app"


class Transaction(models.Model):
    trans_id = models.CharField("M-Pesa TransID", max_length=64, unique=True)
    transaction_type = models.CharField(
        max_length=20, choices=TransactionType.choices, default=TransactionType.PAYMENT
    )
    status = models.CharField(max_length=12, choices=TransactionStatus.choices)
    source = models.CharField(max_length=10, choices=TransactionSource.choices)
    driver = models.ForeignKey(
        Driver, null=True, blank=True, on_delete=models.PROTECT, related_name="transactions"
    )
    vehicle = models.ForeignKey(
        Vehicle, null=True, blank=True, on_delete=models.PROTECT, related_name="transactions"
    )
    account_reference = models.CharField(max_length=64, blank=True)
    amount = MoneyField()
    driver_share = MoneyField(default=0)
    target_contribution = MoneyField(default=0)
    payer_msisdn = models.CharField(max_length=64, blank=True)
    payer_name = models.CharField(max_length=150, blank=True)
    mpesa_time = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()
    business_day = models.DateField(null=True, blank=True)
    # Uncaptured payments: how and by whom an operator assigned it to a driver.
    assignment = models.CharField(
        max_length=16,
        blank=True,
        choices=[("send_share", "Send share"), ("deposit_share", "Deposit share")],
    )
    assigned_by = models.CharField(max_length=150, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=255, blank=True)
    # Deliveries of the same TransID after the one that posted it: counted under the driver's
    # lock by the posting, shown as information (harmless: the unique TransID credited nothing).
    redeliveries = models.PositiveIntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["driver", "business_day"]),
            # Reads of one day across all drivers (reconciliation); INCLUDE on PostgreSQL only.
            models.Index(
                fields=["business_day", "driver"],
                include=["status", "transaction_type", "target_contribution", "redeliveries", "id"],
                name="ledger_tx_day_driver_idx",
            ),
        ]
        permissions = [
            ("assign_uncaptured", "Can assign uncaptured payments to drivers"),
            ("record_missed", "Can record missed M-Pesa payments"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transaction_amount_positive"),
            models.CheckConstraint(
                condition=Q(driver_share__gte=0), name="transaction_share_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(target_contribution__gte=0),
                name="transaction_contribution_not_negative",
            ),
            # B2C pays whole shillings only.
            models.CheckConstraint(
                condition=Exact(F("driver_share"), Cast("driver_share", models.IntegerField())),
                name="transaction_share_whole_shillings",
            ),
            # SQLite keeps decimals as binary floats (50.01 != 30 + 20.01 there), so the sum
            # is compared within half a cent: for two-place amounts that is still exact.
            models.CheckConstraint(
                condition=~Q(status=TransactionStatus.COMPLETED)  # type: ignore[arg-type]  # Q combined with a Lookup: stubs say Combinable
                | ~Q(transaction_type=TransactionType.PAYMENT)
                | LessThan(
                    Abs(F("amount") - F("driver_share") - F("target_contribution")),
                    Value(Decimal("0.005")),
                ),
                name="transaction_payment_split_adds_up",
            ),
            models.CheckConstraint(
                condition=~Q(status=TransactionStatus.COMPLETED) | Q(driver__isnull=False),
                name="transaction_completed_has_driver",
            ),
            models.CheckConstraint(
                condition=Q(transaction_type=TransactionType.PAYMENT)
                | (
                    Q(driver_share=0)
                    & (Q(target_contribution=0) | Q(transaction_type=TransactionType.SELF_PAYMENT))
                ),
                name="transaction_non_payment_no_split",
            ),
            # A self-payment covers at most its own amount of the day's shortfall.
            models.CheckConstraint(
                condition=~Q(transaction_type=TransactionType.SELF_PAYMENT)
                | Q(target_contribution__lte=F("amount")),
                name="transaction_self_payment_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trans_id} {self.amount}"


class EntryKind(models.TextChoices):
    CONTRIBUTION = "contribution", "Contribution"
    OPENING = "opening", "Opening (carried over)"
    CORRECTION = "correction", "Correction"
    # Deposit money moved to the target balance (an approved target deduction, or a refund
    # settling carried debt); its twin is a Target Deduction deposit entry.
    DEPOSIT = "deposit", "From the deposit"


class AppendOnlyError(RuntimeError):
    pass


class AppendOnly(models.Model):
    """Rows the application writes once and never changes (invariant 6); the database refuses
    UPDATE on them too (migrations 0002 and 0004)."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only")


class LedgerEntry(AppendOnly):
    """An immutable signed amount on one driver's target balance for one business day."""

    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="ledger_entries")
    business_day = models.DateField()
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    amount = MoneyField()
    transaction = models.OneToOneField(
        Transaction,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="entry",
    )
    # A correction for a payment whose own entry is missing or differs (on a closed day,
    # which is never rewritten): counted so the same problem is never corrected twice.
    corrects = models.ForeignKey(
        Transaction,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="correction_entries",
    )
    correction = models.ForeignKey(
        "BalanceCorrection",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="entries",
    )
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["business_day", "id"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["driver", "business_day"]),
            # Reads of one day across all drivers (reconciliation); INCLUDE on PostgreSQL only.
            models.Index(
                fields=["business_day", "driver"],
                include=["amount", "kind", "transaction"],
                name="ledger_entry_day_driver_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind=EntryKind.CONTRIBUTION)
                | (Q(transaction__isnull=False) & Q(amount__gte=0)),
                name="entry_contribution_has_transaction",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=EntryKind.values), name="entry_kind_choice"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.driver_id} {self.business_day} {self.kind} {self.amount}"


class DayClose(AppendOnly):
    """One driver's closed business day. The unique (driver, day) row is the exactly-once guard."""

    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="day_closes")
    business_day = models.DateField()
    closing_balance = MoneyField(help_text="Ledger sum of the day: the balance that closed.")
    cached_balance = MoneyField(help_text="The driver's cached balance at the close.")
    target = MoneyField()
    target_met = models.BooleanField()
    sharing = models.BooleanField()
    carried_over = MoneyField(help_text="The next day's opening entry (negative: debt).")
    consecutive_misses = models.PositiveIntegerField()
    flagged_for_review = models.BooleanField(default=False)
    # A day the driver could not work (terminated, later restored): no miss, no new debt;
    # what they owed before is carried unchanged.
    paused = models.BooleanField(default=False, db_default=False)
    closed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-business_day", "driver_id"]
        permissions = [("close_days", "Can run the day close")]
        constraints = [
            models.UniqueConstraint(fields=["driver", "business_day"], name="dayclose_once"),
            models.CheckConstraint(condition=Q(carried_over__lte=0), name="dayclose_no_credit"),
        ]

    def __str__(self) -> str:
        return f"{self.driver_id} {self.business_day} closed at {self.closing_balance}"


class BalanceCorrection(AppendOnly):
    """The audit trail of every balance fix: who changed what, when and why."""

    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="corrections")
    business_day = models.DateField()
    old_balance = MoneyField()
    new_balance = MoneyField()
    adjustment = MoneyField(help_text="old − new, as the legacy tool reports it.")
    reason = models.TextField()
    actor = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.driver_id} {self.old_balance} → {self.new_balance}"


class AdjustmentState(models.TextChoices):
    OPEN = "open", "Open"
    SETTLED = "settled", "Settled"


class Adjustment(models.Model):
    """A debt the driver owes the fleet (e.g. an overpayment). Never touches the target
    balance; settled by Driver Repayments, oldest first."""

    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="adjustments")
    transaction = models.OneToOneField(
        Transaction, on_delete=models.PROTECT, related_name="adjustment"
    )
    amount = MoneyField()
    repaid = MoneyField(default=0)
    description = models.TextField()
    state = models.CharField(
        max_length=8, choices=AdjustmentState.choices, default=AdjustmentState.OPEN
    )
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="adjustment_amount_positive"),
            models.CheckConstraint(
                condition=Q(repaid__gte=0) & Q(repaid__lte=F("amount")),
                name="adjustment_repaid_within_amount",
            ),
            models.CheckConstraint(
                condition=~Q(state="settled") | Q(repaid=F("amount")),
                name="adjustment_settled_means_repaid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.driver_id} owes {self.amount - self.repaid} ({self.state})"

    @property
    def outstanding(self) -> Any:
        return self.amount - self.repaid


class AdjustmentRepayment(models.Model):
    """Which repayment paid how much of which adjustment."""

    adjustment = models.ForeignKey(Adjustment, on_delete=models.PROTECT, related_name="repayments")
    transaction = models.ForeignKey(
        Transaction, on_delete=models.PROTECT, related_name="repayment_allocations"
    )
    amount = MoneyField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="repayment_amount_positive"),
            models.UniqueConstraint(fields=["adjustment", "transaction"], name="repayment_once"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} of adjustment {self.adjustment_id}"


class MissedPaymentState(models.TextChoices):
    VERIFYING = "verifying", "Waiting for the M-Pesa status check"
    POSTED = "posted", "Posted"
    REJECTED = "rejected", "Rejected by the status check"


class MissedPayment(models.Model):
    """An operator's record of a payment the webhook never delivered."""

    trans_id = models.CharField(max_length=64, unique=True)
    amount = MoneyField()
    msisdn = models.CharField(max_length=64)
    mpesa_time = models.DateTimeField()
    vehicle = models.ForeignKey(Vehicle, on_delete=models.PROTECT)
    reason = models.TextField()
    recorded_by = models.CharField(max_length=150)
    state = models.CharField(max_length=10, choices=MissedPaymentState.choices)
    detail = models.TextField(blank=True)
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="missed_record"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="missed_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.trans_id} {self.amount} ({self.state})"


class UncapturedPayment(Transaction):
    """Payments whose account number matched no driver, for the operators' list."""

    class Meta:
        proxy = True
        verbose_name = "uncaptured payment"


class DepositAccount(models.Model):
    """A driver's security deposit settings. The balance is not stored here: it is the last
    deposit entry's `balance_after`, which the database keeps equal to the sum of the entries."""

    driver = models.OneToOneField(Driver, on_delete=models.PROTECT, related_name="deposit")
    required = models.BooleanField(default=False)
    initial_amount = MoneyField(default=0, help_text="The deposit the fleet asks for.")
    allow_target_deduction = models.BooleanField(
        default=False, help_text="A missed target may be paid from the deposit (once approved)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("manage_deposits", "Can record and deduct deposits, approve refunds")]
        constraints = [
            models.CheckConstraint(
                condition=Q(initial_amount__gte=0), name="deposit_initial_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"deposit of {self.driver.driver_id}"


class DepositEntryKind(models.TextChoices):
    INITIAL = "Initial Deposit", "Initial Deposit"
    TOP_UP = "Top Up", "Top Up"
    TARGET_DEDUCTION = "Target Deduction", "Target Deduction"
    DAMAGE_DEDUCTION = "Damage Deduction", "Damage Deduction"
    REFUND = "Refund", "Refund"
    ADJUSTMENT = "Adjustment", "Adjustment"


DEPOSIT_CREDIT_KINDS = [DepositEntryKind.INITIAL, DepositEntryKind.TOP_UP]
DEPOSIT_DEBIT_KINDS = [
    DepositEntryKind.TARGET_DEDUCTION,
    DepositEntryKind.DAMAGE_DEDUCTION,
    DepositEntryKind.REFUND,
]


class DepositEntry(AppendOnly):
    """One movement of a driver's deposit. `seq` numbers a driver's entries 1, 2, 3…; the
    database refuses an entry whose seq or balance_after does not follow from the previous one
    (migration 0007), so the last balance_after is always the sum of the amounts, and the
    CHECK keeps it from going below zero."""

    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="deposit_entries")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=DepositEntryKind.choices)
    amount = MoneyField(help_text="Signed: what this movement added to the deposit.")
    balance_after = MoneyField()
    reference = models.CharField(max_length=255, help_text="M-Pesa receipt or the reason.")
    actor = models.CharField(max_length=150, blank=True)
    transaction = models.ForeignKey(
        Transaction,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deposit_entries",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["driver_id", "seq"]
        verbose_name_plural = "deposit entries"
        constraints = [
            models.UniqueConstraint(fields=["driver", "seq"], name="deposit_entry_seq_once"),
            models.CheckConstraint(condition=Q(seq__gte=1), name="deposit_entry_seq_positive"),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="deposit_balance_not_negative"
            ),
            models.CheckConstraint(condition=~Q(amount=0), name="deposit_entry_not_zero"),
            models.CheckConstraint(
                condition=Q(kind__in=DepositEntryKind.values), name="deposit_entry_kind_choice"
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=DEPOSIT_CREDIT_KINDS) | Q(amount__gt=0),
                name="deposit_credit_positive",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=DEPOSIT_DEBIT_KINDS) | Q(amount__lt=0),
                name="deposit_debit_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.driver.driver_id} #{self.seq} {self.kind} {self.amount}"


class Decision(models.TextChoices):
    PROPOSED = "proposed", "Waiting for a fleet manager"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class DeductionProposal(models.Model):
    """At a missed day's close, for a driver who allows it: pay the shortfall (up to the
    deposit) from the deposit, once a fleet manager approves."""

    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="deductions")
    business_day = models.DateField(help_text="The missed day.")
    shortfall = MoneyField()
    amount = MoneyField(help_text="Proposed: the shortfall, up to the deposit at the close.")
    approved_amount = MoneyField(default=0)
    state = models.CharField(max_length=10, choices=Decision.choices, default=Decision.PROPOSED)
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-business_day", "driver_id"]
        constraints = [
            models.UniqueConstraint(fields=["driver", "business_day"], name="deduction_once"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="deduction_amount_positive"),
            models.CheckConstraint(
                condition=Q(approved_amount__gte=0) & Q(approved_amount__lte=F("amount")),
                name="deduction_approved_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(state__in=Decision.values), name="deduction_state_choice"
            ),
        ]

    def __str__(self) -> str:
        driver = self.driver.driver_id
        return f"{driver} {self.business_day}: {self.amount} from deposit ({self.state})"


class DepositRefund(models.Model):
    """What a terminated driver gets back: the deposit minus open debts, paid by B2C through
    the payout outbox once a fleet manager approves. The figures are computed again at the
    approval, under the driver's lock, and kept as paid."""

    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="refunds")
    deposit_balance = MoneyField()
    target_debt = MoneyField(help_text="Carried target debt not yet worked off.")
    adjustments_debt = MoneyField(help_text="Open adjustments still owed.")
    amount = MoneyField(help_text="Whole shillings: M-Pesa B2C pays no cents.")
    state = models.CharField(max_length=10, choices=Decision.choices, default=Decision.PROPOSED)
    requested_by = models.CharField(max_length=150)
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(deposit_balance__gte=0)
                & Q(target_debt__gte=0)
                & Q(adjustments_debt__gte=0)
                & Q(amount__gte=0),
                name="refund_figures_not_negative",
            ),
            models.CheckConstraint(
                condition=Exact(F("amount"), Cast("amount", models.IntegerField())),
                name="refund_whole_shillings",
            ),
            models.CheckConstraint(
                condition=Q(state__in=Decision.values), name="refund_state_choice"
            ),
        ]

    def __str__(self) -> str:
        return f"refund {self.amount} to {self.driver.driver_id} ({self.state})"
