from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from tuktuk.backoffice import roles
from tuktuk.backoffice.admin_utils import ReadOnlyAdmin
from tuktuk.backoffice.errors import admin_error
from tuktuk.core.errors import OperatorError
from tuktuk.mpesa.callbacks import confirmation_process
from tuktuk.mpesa.models import Callback, CallbackKind
from tuktuk.mpesa.selectors import duplicates_report
from tuktuk.payouts.models import Payout
from tuktuk.payouts.services import payout_retry, payouts_release


@admin.register(Callback)
class CallbackAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at",
        "kind",
        "state",
        "trans_id",
        "result_code",
        "error",
        "remote_addr",
    ]
    list_filter = ["kind", "state"]
    search_fields = ["trans_id", "body", "error"]
    actions = ["replay"]

    @admin.action(description="Replay selected failed confirmations")
    def replay(self, request: HttpRequest, queryset: QuerySet[Callback]) -> None:
        states = [
            confirmation_process(callback_id=pk)
            for pk in queryset.filter(kind=CallbackKind.C2B_CONFIRMATION).values_list(
                "pk", flat=True
            )
        ]
        self.message_user(
            request, f"Replayed {len(states)}: {', '.join(states) or 'none'}", messages.INFO
        )

    def get_urls(self) -> list[URLPattern]:
        duplicates = self.admin_site.admin_view(self.duplicates_view)
        return [
            path("duplicates/", duplicates, name="mpesa_callback_duplicates"),
            *super().get_urls(),
        ]

    def duplicates_view(self, request: HttpRequest) -> HttpResponse:
        """TransIDs delivered more than once, with every delivery (see mpesa.selectors)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            report = duplicates_report(
                date_from=request.GET.get("from") or None, date_to=request.GET.get("to") or None
            )
        except OperatorError as exc:
            admin_error(request, exc)
            report = duplicates_report()
        context = {
            **self.admin_site.each_context(request),
            "title": "Duplicate C2B deliveries",
            "opts": self.model._meta,
            "report": report,
        }
        return TemplateResponse(request, "admin/mpesa/duplicates.html", context)


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
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
    list_filter = ["state", "kind"]
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
