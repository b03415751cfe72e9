"""The portal in the admin: drivers' logins (add one with a PIN, send a one-time code, unlock a
number) and drivers' problem reports (the discrepancy cases, with their count)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from unfold.admin import ModelAdmin

from tuktuk.backoffice import roles
from tuktuk.backoffice.admin_utils import ReadOnlyAdmin, action_reason
from tuktuk.backoffice.errors import admin_error
from tuktuk.backoffice.portal.models import DriverAccount, ProblemReport, ProblemState
from tuktuk.backoffice.portal.selectors import problem_reports_open_count
from tuktuk.backoffice.portal.services import (
    driver_pin_set,
    driver_unlock,
    login_code_send,
    pin_check,
    problem_report_resolve,
)
from tuktuk.core.errors import InvalidInput, OperatorError
from tuktuk.fleet.models import Driver


class DriverAccountAddForm(forms.ModelForm):
    pin = forms.CharField(
        label="PIN", widget=forms.PasswordInput, help_text="4 to 6 digits; the driver chooses "
        "their own at the first login.",
    )  # fmt: skip
    pin_again = forms.CharField(label="PIN again", widget=forms.PasswordInput)

    class Meta:
        model = DriverAccount
        fields = ["driver"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["driver"].queryset = Driver.objects.filter(  # type: ignore[attr-defined]
            archived_at__isnull=True, portal_account__isnull=True
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            pin_check(data.get("pin", ""))
        except InvalidInput as exc:
            self.add_error("pin", str(exc))
        if data.get("pin") != data.get("pin_again"):
            self.add_error("pin_again", "The two PINs differ.")
        return data


@admin.register(DriverAccount)
class DriverAccountAdmin(ModelAdmin):
    list_display = ["driver", "pin_set_at", "pin_set_by", "must_change_pin", "last_login_at"]
    search_fields = ["driver__driver_id", "driver__name", "driver__mpesa_number"]
    list_select_related = ["driver"]
    readonly_fields = [
        "driver",
        "pin_set_at",
        "pin_set_by",
        "must_change_pin",
        "created_by",
        "created_at",
        "last_login_at",
    ]
    actions = ["send_login_code", "unlock"]

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.MANAGE_DRIVER_ACCOUNTS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_manage_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a PIN is set through the services (add, `tuktuk portal pin`)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = DriverAccountAddForm
            kwargs["fields"] = ["driver", "pin", "pin_again"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["driver", "pin", "pin_again"] if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: DriverAccount, form: Any, change: bool) -> None:
        account = driver_pin_set(
            driver_id=form.cleaned_data["driver"].driver_id,
            pin=form.cleaned_data["pin"],
            actor=request.user.get_username(),
        )
        obj.pk = account.pk
        obj.user_id = account.user_id

    @admin.action(description="Send a one-time login code by SMS", permissions=["manage"])
    def send_login_code(self, request: HttpRequest, queryset: QuerySet[DriverAccount]) -> None:
        sent = 0
        for account in queryset.select_related("driver"):
            if login_code_send(driver=account.driver, requested_by=request.user.get_username()):
                sent += 1
            else:
                self.message_user(
                    request,
                    f"{account.driver.driver_id}: a code was sent less than a minute ago, or "
                    "five today already.",
                    messages.WARNING,
                )
        self.message_user(request, f"{sent} login code(s) queued.", messages.SUCCESS)

    @admin.action(description="Unlock after too many wrong PINs", permissions=["manage"])
    def unlock(self, request: HttpRequest, queryset: QuerySet[DriverAccount]) -> None:
        for account in queryset.select_related("driver"):
            driver_unlock(driver_id=account.driver.driver_id, actor=request.user.get_username())
        self.message_user(request, f"{queryset.count()} driver(s) unlocked.", messages.SUCCESS)


class ProblemStateFilter(admin.SimpleListFilter):
    """Open reports first: the list opens on them."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), ("resolved", "Resolved"), ("all", "All")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ProblemReport]
    ) -> QuerySet[ProblemReport]:
        value = self.value() or "open"
        return queryset if value == "all" else queryset.filter(state=value)

    def choices(self, changelist: Any) -> Any:
        current = self.value() or "open"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": current == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


@admin.register(ProblemReport)
class ProblemReportAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "driver",
        "state",
        "trans_id",
        "short_note",
        "business_day",
        "balance_shown",
        "left_to_target_shown",
        "resolved_by",
    ]
    list_filter = [ProblemStateFilter]
    search_fields = ["driver__driver_id", "driver__name", "trans_id", "note"]
    list_select_related = ["driver"]
    actions = ["resolve"]

    @admin.display(description="note")
    def short_note(self, report: ProblemReport) -> str:
        return report.note if len(report.note) <= 80 else report.note[:79] + "…"

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.RESOLVE_PROBLEMS)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        count = problem_reports_open_count()
        title = f"Problem reports from drivers: {count} open"
        return super().changelist_view(request, {**(extra_context or {}), "title": title})

    @admin.action(
        description="Resolve selected reports (asks for the answer)", permissions=["resolve"]
    )
    def resolve(
        self, request: HttpRequest, queryset: QuerySet[ProblemReport]
    ) -> TemplateResponse | None:
        queryset = queryset.filter(state=ProblemState.OPEN)
        reason = action_reason(
            self,
            request,
            queryset,
            title="Resolve problem reports",
            explanation="What was found and done (the driver sees this answer in the portal).",
            submit="Resolve",
        )
        if isinstance(reason, TemplateResponse):
            return reason
        for report in queryset:
            try:
                problem_report_resolve(
                    report_id=report.pk, actor=request.user.get_username(), resolution=reason
                )
            except OperatorError as exc:
                admin_error(request, exc)
        return None
