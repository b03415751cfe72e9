"""Admin building blocks shared by the apps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse


class ReadOnlyAdmin(admin.ModelAdmin):
    """For append-only and money rows: visible to operators, changed only through services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
