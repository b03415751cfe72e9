"""The payout outbox in the admin: look, release held payouts, retry failed ones."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from unfold.contrib.filters.admin import RangeDateFilter

from tuktuk.backoffice import roles
from tuktuk.backoffice.admin_utils import ReadOnlyAdmin, TotalsMixin
from tuktuk.backoffice.errors import admin_error
from tuktuk.core.errors import OperatorError
from tuktuk.payouts.models import Payout
from tuktuk.payouts.services import payout_retry, payouts_release


@admin.register(Payout)
class PayoutAdmin(TotalsMixin, ReadOnlyAdmin):
    list_display = [
        "created_at",
        "driver",
        "kind",
        "amount",
        "state",
        "originator_conversation_id",
        "conversation_id",
        "receipt",
        "result_code",
    ]
    # The business day of the fare a share pays for: the dashboard's driver-share figures link
    # here with transaction__business_day=D (a filter on it is what allows that lookup).
    list_filter = ["state", "kind", ("transaction__business_day", RangeDateFilter)]
    list_filter_submit = True
    totals = [("amount", "Amount")]
    search_fields = [
        "originator_conversation_id",
        "conversation_id",
        "receipt",
        "driver__driver_id",
    ]
    list_select_related = ["driver"]
    actions = ["release_held", "retry_failed"]

    def has_manage_payouts_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.MANAGE_PAYOUTS)

    @admin.action(description="Release selected held payouts", permissions=["manage_payouts"])
    def release_held(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        released = payouts_release(
            actor=request.user.get_username(),
            payout_ids=list(queryset.values_list("pk", flat=True)),
        )
        self.message_user(request, f"Released {released} held payout(s).", messages.SUCCESS)

    @admin.action(
        description="Retry selected failed payouts (outcome known)", permissions=["manage_payouts"]
    )
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        for payout in queryset:
            try:
                payout_retry(
                    payout_id=payout.pk, actor=request.user.get_username(), reason="admin retry"
                )
                self.message_user(request, f"Payout {payout.pk} queued again.", messages.SUCCESS)
            except OperatorError as exc:
                admin_error(request, exc)
