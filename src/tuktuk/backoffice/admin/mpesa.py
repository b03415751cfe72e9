"""The callback inbox in the admin: stored callbacks, replays, the duplicate-deliveries report."""

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
from tuktuk.backoffice.operator_services import callbacks_replay_by
from tuktuk.core.errors import OperatorError
from tuktuk.mpesa.models import Callback
from tuktuk.mpesa.selectors import duplicates_report


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

    def has_replay_callbacks_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.REPLAY_CALLBACKS)

    # A replay posts the payment: money, so a fleet manager's permission and an actor.
    @admin.action(
        description="Replay selected failed confirmations", permissions=["replay_callbacks"]
    )
    def replay(self, request: HttpRequest, queryset: QuerySet[Callback]) -> None:
        counts = callbacks_replay_by(
            actor=roles.require(request.user, roles.REPLAY_CALLBACKS),
            callback_ids=list(queryset.values_list("pk", flat=True)),
        )
        summary = ", ".join(f"{state}: {n}" for state, n in sorted(counts.items())) or "none"
        self.message_user(request, f"Replayed {sum(counts.values())}: {summary}", messages.INFO)

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
