from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from tuktuk.backoffice import roles
from tuktuk.backoffice.admin_utils import ReadOnlyAdmin
from tuktuk.backoffice.errors import admin_error
from tuktuk.core.dates import MOMENT_FORMATS
from tuktuk.core.errors import InvalidInput, OperatorError
from tuktuk.fleet.models import Driver
from tuktuk.ledger.adjustments import adjustment_add
from tuktuk.ledger.missed import missed_payment_check, missed_payment_record, missed_time_check
from tuktuk.ledger.models import (
    Adjustment,
    BalanceCorrection,
    DayClose,
    LedgerEntry,
    MissedPayment,
    Transaction,
    TransactionStatus,
    UncapturedPayment,
)
from tuktuk.ledger.uncaptured import DEPOSIT_SHARE, SEND_SHARE, uncaptured_assign


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
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


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "driver", "business_day", "kind", "amount", "transaction", "note"]
    list_filter = ["kind", "business_day"]
    search_fields = ["driver__driver_id", "transaction__trans_id"]
    list_select_related = ["driver", "transaction"]


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
    ]
    list_filter = ["business_day", "target_met", "flagged_for_review"]
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
class AdjustmentAdmin(admin.ModelAdmin):
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
class MissedPaymentAdmin(admin.ModelAdmin):
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
