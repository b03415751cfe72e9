from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin

from tuktuk.backoffice import roles
from tuktuk.backoffice.admin_utils import ReadOnlyAdmin, TotalsMixin, action_reason
from tuktuk.backoffice.deposit_report import deposit_report
from tuktuk.backoffice.errors import admin_error
from tuktuk.backoffice.responses import deposit_report_csv_response
from tuktuk.backoffice.selectors import refund_paid
from tuktuk.core.dates import MOMENT_FORMATS
from tuktuk.core.errors import InvalidInput, OperatorError
from tuktuk.core.money import operator_amount
from tuktuk.fleet.models import Driver
from tuktuk.ledger.adjustments import adjustment_add
from tuktuk.ledger.deposit_book import deposit_balance_subquery
from tuktuk.ledger.deposits import (
    OPERATOR_CREDITS,
    OPERATOR_DEBITS,
    deduction_decide,
    deposit_add,
    deposit_deduct,
    deposit_settings_set,
)
from tuktuk.ledger.exits import refund_reject, refunds_approve
from tuktuk.ledger.missed import missed_payment_check, missed_payment_record, missed_time_check
from tuktuk.ledger.models import (
    Adjustment,
    BalanceCorrection,
    DayClose,
    DeductionProposal,
    DepositAccount,
    DepositEntry,
    DepositRefund,
    LedgerEntry,
    MissedPayment,
    Transaction,
    TransactionStatus,
    UncapturedPayment,
)
from tuktuk.ledger.uncaptured import DEPOSIT_SHARE, SEND_SHARE, uncaptured_assign


@admin.register(Transaction)
class TransactionAdmin(TotalsMixin, ReadOnlyAdmin):
    list_display = [
        "trans_id",
        "transaction_type",
        "status",
        "driver",
        "amount",
        "driver_share",
        "target_contribution",
        "account_reference",
        "business_day",
        "received_at",
    ]
    list_filter = ["status", "transaction_type", "source", "business_day"]
    search_fields = ["trans_id", "account_reference", "payer_msisdn", "driver__driver_id"]
    list_select_related = ["driver"]
    totals = [
        ("amount", "Amount"),
        ("driver_share", "Driver share"),
        ("target_contribution", "Target contribution"),
    ]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(TotalsMixin, ReadOnlyAdmin):
    list_display = ["id", "driver", "business_day", "kind", "amount", "transaction", "note"]
    list_filter = ["kind", "business_day"]
    search_fields = ["driver__driver_id", "transaction__trans_id"]
    list_select_related = ["driver", "transaction"]
    totals = [("amount", "Amount")]


@admin.register(DayClose)
class DayCloseAdmin(ReadOnlyAdmin):
    list_display = [
        "business_day",
        "driver",
        "closing_balance",
        "cached_balance",
        "target",
        "target_met",
        "carried_over",
        "consecutive_misses",
        "flagged_for_review",
        "paused",
    ]
    # Paused: off on the roster, no vehicle all day, or away (docs/who-drives.md).
    list_filter = ["business_day", "target_met", "paused", "flagged_for_review"]
    search_fields = ["driver__driver_id", "driver__name"]


@admin.register(BalanceCorrection)
class BalanceCorrectionAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "driver",
        "business_day",
        "old_balance",
        "new_balance",
        "adjustment",
        "actor",
        "reason",
    ]
    list_filter = ["business_day"]
    search_fields = ["driver__driver_id", "reason", "actor"]


# Operator money tools ----------------------------------------------------------------------


class AdjustmentForm(forms.ModelForm):
    class Meta:
        model = Adjustment
        fields = ["driver", "amount", "description"]
        labels = {"description": "Reason (what the driver owes for)"}


@admin.register(Adjustment)
class AdjustmentAdmin(ModelAdmin):
    form = AdjustmentForm
    list_display = [
        "created_at",
        "driver",
        "amount",
        "repaid",
        "state",
        "description",
        "created_by",
    ]
    list_filter = ["state"]
    search_fields = ["driver__driver_id", "description"]
    list_select_related = ["driver"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.ADJUST)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Adjustment, form: Any, change: bool) -> None:
        # Through the service, like the CLI: the Adjustment transaction, the event, the actor.
        created = adjustment_add(
            driver_id=obj.driver.driver_id,
            amount=obj.amount,
            reason=obj.description,
            actor=roles.require(request.user, roles.ADJUST),
        )
        obj.pk = created.pk
        obj._state.adding = False


class AssignForm(forms.Form):
    driver = forms.ModelChoiceField(queryset=Driver.objects.filter(is_active=True))
    mode = forms.ChoiceField(
        choices=[(SEND_SHARE, "Send share (split + payout)"), (DEPOSIT_SHARE, "Deposit share")]
    )
    reason = forms.CharField(max_length=255)


@admin.register(UncapturedPayment)
class UncapturedPaymentAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at",
        "trans_id",
        "amount",
        "payer_msisdn",
        "payer_name",
        "account_reference",
        "status",
        "assign_link",
    ]
    search_fields = ["trans_id", "payer_msisdn", "account_reference"]

    def get_queryset(self, request: HttpRequest) -> Any:
        # Assigned ones stay listed (with who and when), so the history is visible.
        return (
            super()
            .get_queryset(request)
            .filter(models.Q(status=TransactionStatus.UNMATCHED) | ~models.Q(assignment=""))
        )

    @admin.display(description="assign")
    def assign_link(self, payment: UncapturedPayment) -> str:
        if payment.status != TransactionStatus.UNMATCHED:
            when = f"{payment.assigned_at:%Y-%m-%d %H:%M}" if payment.assigned_at else ""
            return f"{payment.assignment} by {payment.assigned_by} {when}".strip()
        url = reverse("admin:ledger_uncapturedpayment_assign", args=[payment.pk])
        return format_html('<a href="{}">Assign…</a>', url)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.assign_view)
        return [
            path("<int:pk>/assign/", view, name="ledger_uncapturedpayment_assign"),
            *super().get_urls(),
        ]

    def assign_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm(roles.ASSIGN_UNCAPTURED):
            raise PermissionDenied
        payment = get_object_or_404(UncapturedPayment, pk=pk)
        form = AssignForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                uncaptured_assign(
                    trans_id=payment.trans_id,
                    driver_id=form.cleaned_data["driver"].driver_id,
                    mode=form.cleaned_data["mode"],
                    reason=form.cleaned_data["reason"],
                    actor=roles.require(request.user, roles.ASSIGN_UNCAPTURED),
                )
            except OperatorError as exc:
                admin_error(request, exc)
            else:
                self.message_user(request, f"{payment.trans_id} assigned.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:ledger_uncapturedpayment_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Assign {payment.trans_id}",
            "payment": payment,
            "form": form,
        }
        return TemplateResponse(request, "admin/ledger/assign_uncaptured.html", context)


class MissedPaymentForm(forms.ModelForm):
    # A text field, parsed here: the model's DateTimeField would refuse M-Pesa's own format.
    mpesa_time = forms.CharField(
        label="M-Pesa time",
        help_text=f"{MOMENT_FORMATS}; Africa/Nairobi time unless an offset is given",
    )

    class Meta:
        model = MissedPayment
        fields = ["trans_id", "amount", "msisdn", "mpesa_time", "vehicle", "reason"]

    def clean_mpesa_time(self) -> dt.datetime:
        try:
            return missed_time_check(self.cleaned_data["mpesa_time"])
        except InvalidInput as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        # The service's own checks, so what it would refuse is shown on the form (not a 500).
        try:
            missed_payment_check(
                trans_id=cleaned["trans_id"],
                amount=str(cleaned["amount"]),
                msisdn=cleaned["msisdn"],
                mpesa_time=cleaned["mpesa_time"],
                vehicle_id=cleaned["vehicle"].vehicle_id,
                reason=cleaned["reason"],
            )
        except InvalidInput as exc:
            raise forms.ValidationError(str(exc)) from exc
        return cleaned


@admin.register(MissedPayment)
class MissedPaymentAdmin(ModelAdmin):
    form = MissedPaymentForm
    list_display = ["created_at", "trans_id", "amount", "vehicle", "state", "recorded_by", "detail"]
    list_filter = ["state"]
    search_fields = ["trans_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.RECORD_MISSED)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: MissedPayment, form: Any, change: bool) -> None:
        record = missed_payment_record(
            trans_id=obj.trans_id,
            amount=str(obj.amount),
            msisdn=obj.msisdn,
            mpesa_time=form.cleaned_data["mpesa_time"],
            vehicle_id=obj.vehicle.vehicle_id,
            reason=obj.reason,
            actor=roles.require(request.user, roles.RECORD_MISSED),
        )
        obj.pk = record.pk
        obj._state.adding = False


# Deposits ----------------------------------------------------------------------------------


# "add:top-up" → deposit_add(kind="top-up"); the kinds are the service's own.
MOVEMENTS = [
    *((f"add:{key}", f"In: {kind.label}") for key, kind in OPERATOR_CREDITS.items()),
    *((f"deduct:{key}", f"Out: {kind.label}") for key, kind in OPERATOR_DEBITS.items()),
]


class DepositMovementForm(forms.Form):
    driver = forms.ModelChoiceField(queryset=Driver.objects.order_by("driver_id"))
    movement = forms.ChoiceField(choices=MOVEMENTS)
    amount = forms.DecimalField(
        max_digits=14, decimal_places=2, min_value=Decimal("0.01"), help_text="KSH"
    )
    reason = forms.CharField(max_length=255)


@admin.register(DepositEntry)
class DepositEntryAdmin(ReadOnlyAdmin):
    """The deposit book: entries are only ever added, by the services (record one here)."""

    list_display = [
        "created_at",
        "driver",
        "seq",
        "kind",
        "amount",
        "balance_after",
        "reference",
        "actor",
        "transaction",
    ]
    list_filter = ["kind", "created_at"]
    search_fields = ["driver__driver_id", "driver__name", "reference", "actor"]
    list_select_related = ["driver", "transaction"]
    change_list_template = "admin/ledger/depositentry/change_list.html"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {"can_record": request.user.has_perm(roles.MANAGE_DEPOSITS)}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.record_view)
        return [
            path("record/", view, name="ledger_depositentry_record"),
            *super().get_urls(),
        ]

    def record_view(self, request: HttpRequest) -> HttpResponse:
        """Money into or out of a driver's deposit, through the services."""
        if not request.user.has_perm(roles.MANAGE_DEPOSITS):
            raise PermissionDenied
        form = DepositMovementForm(
            request.POST or None, initial={"driver": request.GET.get("driver")}
        )
        if request.method == "POST" and form.is_valid():
            direction, kind = form.cleaned_data["movement"].split(":")
            move = deposit_add if direction == "add" else deposit_deduct
            driver_id = form.cleaned_data["driver"].driver_id
            try:
                entry = move(
                    driver_id=driver_id,
                    amount=form.cleaned_data["amount"],
                    kind=kind,
                    reason=form.cleaned_data["reason"],
                    actor=roles.require(request.user, roles.MANAGE_DEPOSITS),
                )
            except OperatorError as exc:
                admin_error(request, exc)  # shown above the form, the input kept
            else:
                self.message_user(
                    request,
                    f"{driver_id}: {entry.kind} {entry.amount:+} KSH, deposit now "
                    f"{entry.balance_after} KSH.",
                    messages.SUCCESS,
                )
                changelist = reverse("admin:ledger_depositentry_changelist")
                return HttpResponseRedirect(f"{changelist}?q={driver_id}")
        context = {
            **self.admin_site.each_context(request),
            "title": "Record a deposit movement",
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/ledger/depositentry/record.html", context)


class DepositSettingsForm(forms.ModelForm):
    class Meta:
        model = DepositAccount
        fields = ["driver", "required", "initial_amount", "allow_target_deduction"]

    def clean_initial_amount(self) -> Decimal:
        # The service's own rule (0, or a positive amount with two decimals at most), so what
        # it would refuse is shown on the form, not a 500.
        value: Decimal = self.cleaned_data["initial_amount"]
        if value != 0:
            try:
                operator_amount(value)
            except InvalidInput as exc:
                raise forms.ValidationError(str(exc)) from exc
        return value


SETTINGS_FIELDS = ("required", "initial_amount", "allow_target_deduction")


@admin.register(DepositAccount)
class DepositAccountAdmin(ModelAdmin):
    """Deposit settings, changed only through deposit_settings_set (an event names the actor);
    the balance is the deposit book's. Adding one sets up a driver's deposit settings."""

    form = DepositSettingsForm
    list_display = [
        "driver",
        "required",
        "initial_amount",
        "allow_target_deduction",
        "balance",
        "updated_at",
    ]
    list_filter = ["required", "allow_target_deduction"]
    search_fields = ["driver__driver_id", "driver__name"]
    list_select_related = ["driver"]
    change_list_template = "admin/ledger/depositaccount/change_list.html"

    def get_queryset(self, request: HttpRequest) -> Any:
        return (
            super()
            .get_queryset(request)
            .annotate(balance_now=deposit_balance_subquery("driver_id"))
        )

    @admin.display(description="balance", ordering="balance_now")
    def balance(self, account: Any) -> Decimal:
        return account.balance_now

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["driver"] if obj else []

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.MANAGE_DEPOSITS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(roles.MANAGE_DEPOSITS)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: DepositAccount, form: Any, change: bool
    ) -> None:
        names = [name for name in SETTINGS_FIELDS if not change or name in form.changed_data]
        if not names:
            return  # nothing changed: nothing to record
        values = {name: form.cleaned_data[name] for name in names}
        initial = values.get("initial_amount")
        account = deposit_settings_set(
            driver_id=obj.driver.driver_id,
            actor=roles.require(request.user, roles.MANAGE_DEPOSITS),
            required=values.get("required"),
            initial_amount=None if initial is None else ("0" if initial == 0 else str(initial)),
            allow_target_deduction=values.get("allow_target_deduction"),
        )
        obj.pk = account.pk
        obj._state.adding = False

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.report_view)
        return [path("report/", view, name="ledger_depositaccount_report"), *super().get_urls()]

    def report_view(self, request: HttpRequest) -> HttpResponse:
        """Every driver's deposit and what made it (backoffice.deposit_report); ?format=csv."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        report = deposit_report()
        if request.GET.get("format") == "csv":
            return deposit_report_csv_response(report)
        context = {
            **self.admin_site.each_context(request),
            "title": "Deposit report",
            "opts": self.model._meta,
            "report": report,
            "totals": report.totals,
        }
        return TemplateResponse(request, "admin/ledger/depositaccount/report.html", context)


def _proposal_label(proposal: DeductionProposal) -> str:
    return (
        f"{proposal.driver}: missed {proposal.business_day} by {proposal.shortfall} KSH, "
        f"{proposal.amount} KSH from the deposit"
    )


@admin.register(DeductionProposal)
class DeductionProposalAdmin(ReadOnlyAdmin):
    list_display = [
        "business_day",
        "driver",
        "shortfall",
        "amount",
        "state",
        "approved_amount",
        "decided_by",
        "decided_at",
        "reason",
    ]
    list_filter = ["state", "business_day"]
    search_fields = ["driver__driver_id", "driver__name"]
    list_select_related = ["driver"]
    actions = ["approve_proposals", "reject_proposals"]

    def has_manage_deposits_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.MANAGE_DEPOSITS)

    def _decide(
        self,
        request: HttpRequest,
        queryset: QuerySet[DeductionProposal],
        *,
        approve: bool,
        reason: str = "",
    ) -> None:
        actor = roles.require(request.user, roles.MANAGE_DEPOSITS)
        for proposal in queryset.order_by("business_day", "pk"):
            try:
                decided = deduction_decide(
                    proposal_id=proposal.pk, approve=approve, actor=actor, reason=reason
                )
            except OperatorError as exc:
                admin_error(request, exc)
                continue
            moved = f", {decided.approved_amount} KSH moved to the target" if approve else ""
            self.message_user(
                request,
                f"{decided.driver.driver_id} {decided.business_day}: {decided.state}{moved}.",
                messages.SUCCESS,
            )

    @admin.action(
        description="Approve selected deductions (deposit → target)",
        permissions=["manage_deposits"],
    )
    def approve_proposals(
        self, request: HttpRequest, queryset: QuerySet[DeductionProposal]
    ) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Reject selected deductions…", permissions=["manage_deposits"])
    def reject_proposals(
        self, request: HttpRequest, queryset: QuerySet[DeductionProposal]
    ) -> HttpResponse | None:
        asked = action_reason(
            self,
            request,
            queryset.select_related("driver"),
            title="Reject deposit deductions",
            explanation="Nothing moves: the missed target stays carried as debt.",
            submit="Reject",
            describe=_proposal_label,
        )
        if not isinstance(asked, str):
            return asked
        self._decide(request, queryset, approve=False, reason=asked)
        return None


def _refund_label(refund: DepositRefund) -> str:
    return f"{refund.driver}: {refund.amount} KSH ({refund.state})"


@admin.register(DepositRefund)
class DepositRefundAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "driver",
        "deposit_balance",
        "target_debt",
        "adjustments_debt",
        "amount",
        "state",
        "requested_by",
        "decided_by",
        "decided_at",
        "payout_state",
        "reason",
    ]
    list_filter = ["state"]
    search_fields = ["driver__driver_id", "driver__name"]
    list_select_related = ["driver", "payout"]
    actions = ["approve_refunds", "reject_refunds"]

    def has_manage_deposits_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.MANAGE_DEPOSITS)

    @admin.display(description="payout")
    def payout_state(self, refund: DepositRefund) -> str:
        payout = getattr(refund, "payout", None)
        return f"{payout.state} ({payout.originator_conversation_id})" if payout else "—"

    @admin.action(
        description="Approve selected refunds (settle debts, pay the rest by M-Pesa)",
        permissions=["manage_deposits"],
    )
    def approve_refunds(self, request: HttpRequest, queryset: QuerySet[DepositRefund]) -> None:
        decisions = refunds_approve(
            refund_ids=list(queryset.order_by("pk").values_list("pk", flat=True)),
            actor=roles.require(request.user, roles.MANAGE_DEPOSITS),
        )
        for decision in decisions:
            if decision.refund is None:
                # The service reports each refusal as a line (its kind is not kept): shown as
                # "look again", the level of a Conflict.
                self.message_user(
                    request, f"Refund {decision.refund_id}: {decision.error}", messages.WARNING
                )
            else:
                self.message_user(
                    request,
                    f"Refund {decision.refund_id} to {decision.refund.driver.driver_id} "
                    f"approved: {refund_paid(decision.refund)}.",
                    messages.SUCCESS,
                )

    @admin.action(description="Reject selected refunds…", permissions=["manage_deposits"])
    def reject_refunds(
        self, request: HttpRequest, queryset: QuerySet[DepositRefund]
    ) -> HttpResponse | None:
        asked = action_reason(
            self,
            request,
            queryset.select_related("driver"),
            title="Reject deposit refunds",
            explanation="Nothing is paid; the deposit stays as it is.",
            submit="Reject",
            describe=_refund_label,
        )
        if not isinstance(asked, str):
            return asked
        actor = roles.require(request.user, roles.MANAGE_DEPOSITS)
        for refund in queryset.order_by("pk"):
            try:
                refund_reject(refund_id=refund.pk, reason=asked, actor=actor)
            except OperatorError as exc:
                admin_error(request, exc)
            else:
                self.message_user(request, f"Refund {refund.pk} rejected.", messages.SUCCESS)
        return None
