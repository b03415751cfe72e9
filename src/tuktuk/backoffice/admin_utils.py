"""Admin building blocks shared by the apps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.contrib import admin
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from unfold.admin import ModelAdmin, TabularInline

from tuktuk.core.money import money


class ReadOnlyAdmin(ModelAdmin):
    """For append-only and money rows: visible to operators, changed only through services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TotalsMixin:
    """A totals row above a money list: the sums of `totals` (field, label) over every row the
    filters and search select (all pages, not only the one shown), so a list opened from a
    dashboard figure shows the figure."""

    totals: ClassVar[list[tuple[str, str]]] = []
    list_before_template = "admin/totals.html"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response: HttpResponse = super().changelist_view(request, extra_context)  # type: ignore[misc]
        context = getattr(response, "context_data", None)
        changelist = context.get("cl") if context else None
        if context is not None and changelist is not None:
            sums = changelist.queryset.order_by().aggregate(
                **{f"total_{name}": Sum(name) for name, _ in self.totals}
            )
            context["totals"] = {
                "count": changelist.result_count,
                "rows": [
                    {"field": name, "label": label, "value": money(sums[f"total_{name}"] or 0)}
                    for name, label in self.totals
                ],
            }
        return response


# The field the reason page posts back, so the action knows the operator has answered.
REASON_CONFIRMED = "confirm_reason"
REASON_MAX_LENGTH = 2000


def action_reason(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    title: str,
    explanation: str,
    submit: str,
    describe: Callable[[Any], str] = str,
) -> str | TemplateResponse:
    """For an admin action whose service needs a reason: the reason, once the operator has
    given it on the page this returns otherwise (the selection is carried through, as the
    reconciliation check's confirmation does). Nothing is done until then."""
    confirmed = request.POST.get(REASON_CONFIRMED) == "yes"
    reason = request.POST.get("reason", "").strip()
    if confirmed and reason:
        return reason
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        "objects": [(obj.pk, describe(obj)) for obj in queryset],
        "action": request.POST.get("action", ""),
        "explanation": explanation,
        "submit": submit,
        "missing_reason": confirmed,
        "confirm_field": REASON_CONFIRMED,
        "reason_max_length": REASON_MAX_LENGTH,
    }
    return TemplateResponse(request, "admin/action_reason.html", context)
