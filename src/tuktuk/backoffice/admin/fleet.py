from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from tuktuk.backoffice import roles
from tuktuk.backoffice.admin_utils import ReadOnlyInline, action_reason
from tuktuk.backoffice.errors import admin_error
from tuktuk.backoffice.legacy import fix_driver_balance, reconcile_driver_balance
from tuktuk.backoffice.responses import statement_csv_response
from tuktuk.backoffice.selectors import deposit_balance_subquery
from tuktuk.core.errors import OperatorError
from tuktuk.fleet.models import Driver, FleetSettings, Vehicle
from tuktuk.ledger.exits import (
    driver_archive,
    driver_misses_reset,
    driver_restore,
    driver_terminate,
)
from tuktuk.ledger.models import BalanceCorrection, DayClose, LedgerEntry, Transaction
from tuktuk.ledger.statement import driver_statement

FIX_PERMISSION = "ledger.add_balancecorrection"


@admin.register(FleetSettings)
class FleetSettingsAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "global_daily_target",
        "global_fare_percentage",
        "target_sharing",
        "instant_payouts",
        "operating_hours_start",
        "operating_hours_end",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # One row; and adding it sets the targets, so the model permission still applies.
        return not FleetSettings.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Vehicle)
class VehicleAdmin(admin.ModelAdmin):
    list_display = ["vehicle_id", "mpesa_account", "assigned_driver", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["vehicle_id", "mpesa_account", "driver__name", "driver__driver_id"]

    @admin.display(description="driver")
    def assigned_driver(self, vehicle: Vehicle) -> str:
        driver = getattr(vehicle, "driver", None)
        return str(driver) if driver else "—"


class BalanceCorrectionInline(ReadOnlyInline):
    model = BalanceCorrection
    fields = (
        "created_at",
        "business_day",
        "old_balance",
        "new_balance",
        "adjustment",
        "reason",
        "actor",
    )
    readonly_fields = fields
    verbose_name_plural = "balance corrections (audit trail)"


class DayCloseInline(ReadOnlyInline):
    model = DayClose
    fields = (
        "business_day",
        "closing_balance",
        "cached_balance",
        "target",
        "target_met",
        "carried_over",
        "consecutive_misses",
    )
    readonly_fields = fields
    max_num = 14
    verbose_name_plural = "recent day closes"


class DriverStatusFilter(admin.SimpleListFilter):
    """Archived drivers are off the everyday list (ledger.exits.driver_archive): shown only
    when asked for."""

    title = "status"
    parameter_name = "status"
    ALL = "all"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("active", "Active"),
            ("inactive", "Inactive"),
            ("terminated", "Terminated"),
            ("archived", "Archived"),
            (self.ALL, "All, archived included"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Driver]) -> QuerySet[Driver]:
        # Driver.status as a query: archived, else terminated, else is_active.
        value = self.value()
        if value == self.ALL:
            return queryset
        if value == "archived":
            return queryset.filter(archived_at__isnull=False)
        if value == "terminated":
            return queryset.filter(terminated_at__isnull=False, archived_at__isnull=True)
        if value in ("active", "inactive"):
            return queryset.filter(terminated_at__isnull=True, is_active=value == "active")
        return queryset.filter(archived_at__isnull=True)

    def choices(self, changelist: Any) -> Any:
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Not archived",
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


class DriverForm(forms.ModelForm):
    def clean_account_alias(self) -> str | None:
        # As Driver.save stores it (trimmed, upper case), before the model's constraints are
        # checked against it: " d112001 " is D112001, not a violated constraint.
        return Vehicle.canonical_account(self.cleaned_data.get("account_alias") or "") or None


# The fields no form may write: the ledger (posting, day close, reconciliation) and the exit
# services (terminate, archive, restore, reset misses) change them, each with an event.
LEDGER_CONTROLLED = [
    "current_balance",
    "left_to_target",
    "balance_day",
    "consecutive_misses",
    "flagged_for_review",
    "terminated_at",
    "archived_at",
]


@admin.register(Driver)
class DriverAdmin(admin.ModelAdmin):
    form = DriverForm
    list_display = [
        "driver_id",
        "name",
        "mpesa_number",
        "vehicle",
        "current_balance",
        "left_to_target",
        "consecutive_misses",
        "flagged_for_review",
        "status",
        "deposit_balance",
    ]
    list_filter = [
        DriverStatusFilter,
        "flagged_for_review",
        "target_sharing",
        "instant_payout",
    ]
    search_fields = ["driver_id", "name", "mpesa_number", "vehicle__vehicle_id"]
    list_select_related = ["vehicle"]
    readonly_fields = [
        *LEDGER_CONTROLLED,
        "status",
        "deposit_balance",
        "created_at",
        "updated_at",
        "verification_link",
        "statement_link",
        "deposit_links",
    ]
    actions = [
        "reconciliation_check",
        "terminate_drivers",
        "archive_drivers",
        "restore_drivers",
        "reset_misses",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "driver_id",
                    "name",
                    "mpesa_number",
                    "vehicle",
                    "is_active",
                    "account_alias",
                ]
            },
        ),
        (
            "Overrides (empty or 0: follow the fleet settings)",
            {"fields": ["daily_target", "fare_percentage", "target_sharing", "instant_payout"]},
        ),
        (
            "Balance (ledger-controlled, read-only)",
            {
                "fields": [
                    "current_balance",
                    "left_to_target",
                    "balance_day",
                    "consecutive_misses",
                    "flagged_for_review",
                    "verification_link",
                    "statement_link",
                ]
            },
        ),
        (
            "Status and deposit (changed by the actions: terminate, archive, restore, reset "
            "misses; and the deposit tools)",
            {
                "fields": [
                    "status",
                    "terminated_at",
                    "archived_at",
                    "deposit_balance",
                    "deposit_links",
                ]
            },
        ),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [BalanceCorrectionInline, DayCloseInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Driver]:
        return super().get_queryset(request).annotate(deposit_now=deposit_balance_subquery())

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.terminated_at is not None:
            # A terminated driver is inactive and has no vehicle (the database checks it);
            # restoring them is the way back.
            fields += ["is_active", "vehicle"]
        return [*fields, "driver_id"] if obj else fields

    @admin.display(description="status")
    def status(self, driver: Driver) -> str:
        return driver.status

    @admin.display(description="deposit", ordering="deposit_now")
    def deposit_balance(self, driver: Driver) -> Any:
        return getattr(driver, "deposit_now", None)

    @admin.display(description="deposit tools")
    def deposit_links(self, driver: Driver) -> str:
        if not driver.pk:
            return "—"
        entries = reverse("admin:ledger_depositentry_changelist")
        record = reverse("admin:ledger_depositentry_record")
        return format_html(
            '<a href="{}?q={}">Deposit entries</a> · <a href="{}?driver={}">Record a deposit '
            "movement</a>",
            entries,
            driver.driver_id,
            record,
            driver.pk,
        )

    @admin.display(description="transaction verification")
    def verification_link(self, driver: Driver) -> str:
        if not driver.pk:
            return "—"
        url = reverse("admin:fleet_driver_verification", args=[driver.pk])
        return format_html('<a href="{}">Transactions and ledger entries of the day</a>', url)

    @admin.display(description="statement")
    def statement_link(self, driver: Driver) -> str:
        if not driver.pk:
            return "—"
        url = reverse("admin:fleet_driver_statement", args=[driver.pk])
        return format_html('<a href="{}">Statement (date range, CSV)</a>', url)

    def get_urls(self) -> list[URLPattern]:
        verification = self.admin_site.admin_view(self.verification_view)
        statement = self.admin_site.admin_view(self.statement_view)
        return [
            path("<int:pk>/verification/", verification, name="fleet_driver_verification"),
            path("<int:pk>/statement/", statement, name="fleet_driver_statement"),
            *super().get_urls(),
        ]

    def statement_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        driver = get_object_or_404(Driver, pk=pk)
        try:
            statement = driver_statement(
                driver_id=driver.driver_id,
                date_from=request.GET.get("from") or None,
                date_to=request.GET.get("to") or None,
            )
        except OperatorError as exc:
            admin_error(request, exc)
            statement = driver_statement(driver_id=driver.driver_id)
        if request.GET.get("format") == "csv":
            return statement_csv_response(statement)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Statement: {driver}",
            "driver": driver,
            "statement": statement,
            "csv_query": f"from={statement.date_from}&to={statement.date_to}&format=csv",
        }
        return TemplateResponse(request, "admin/fleet/driver/statement.html", context)

    def verification_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        driver = get_object_or_404(Driver, pk=pk)
        try:
            result = reconcile_driver_balance(driver.driver_id, request.GET.get("date") or None)
        except OperatorError as exc:
            admin_error(request, exc)
            result = reconcile_driver_balance(driver.driver_id)
        day = result["business_day"]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Transaction verification: {driver}",
            "driver": driver,
            "result": result,
            "transactions": Transaction.objects.filter(driver=driver, business_day=day)
            .select_related("entry")
            .order_by("received_at", "pk"),
            "entries": LedgerEntry.objects.filter(driver=driver, business_day=day)
            .select_related("transaction")
            .order_by("pk"),
        }
        return TemplateResponse(request, "admin/fleet/driver/verification.html", context)

    @admin.action(description="Reconciliation check (then fix after confirmation)")
    def reconciliation_check(
        self, request: HttpRequest, queryset: QuerySet[Driver]
    ) -> HttpResponse | None:
        drivers = list(queryset.order_by("driver_id"))
        can_fix = request.user.has_perm(FIX_PERMISSION)
        if request.POST.get("confirm_fix") == "yes":
            if not can_fix:
                raise PermissionDenied
            reason = request.POST.get("reason", "").strip()
            if not reason:
                self.message_user(request, "A reason is required to fix balances.", messages.ERROR)
                return None
            for driver in drivers:
                fixed = fix_driver_balance(
                    driver.driver_id,
                    auto_fix=True,
                    reason=reason,
                    actor=request.user.get_username(),
                )
                level = messages.SUCCESS if fixed["fixed"] else messages.INFO
                self.message_user(request, f"{driver.driver_id}: {fixed['message']}", level)
            return None
        rows = []
        for driver in drivers:
            row = reconcile_driver_balance(driver.driver_id)
            rows.append({**row, "pk": driver.pk})
        broken = [row for row in rows if row["needs_fix"]]
        context = {
            **self.admin_site.each_context(request),
            "title": "Reconciliation check",
            "rows": rows,
            "result": {
                "drivers_checked": len(rows),
                "drivers_with_discrepancies": len(broken),
                "total_discrepancy_amount": sum(abs(row["discrepancy"]) for row in broken),
            },
            "fixable": len(broken),
            "can_fix": can_fix,
            "selected": [driver.pk for driver in drivers],
        }
        return TemplateResponse(request, "admin/fleet/driver/reconciliation.html", context)

    # Leaving the fleet, and the legacy "Reset Consecutive Misses" ---------------------------

    def has_manage_exits_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perms(roles.MANAGE_EXITS)

    def has_reset_misses_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(roles.RESET_MISSES)

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Driver],
        act: Callable[[Driver], str],
    ) -> None:
        """Run one service per driver; a refusal is shown and does not stop the others."""
        for driver in queryset.order_by("driver_id"):
            try:
                done = act(driver)
            except OperatorError as exc:
                admin_error(request, exc)
            else:
                self.message_user(request, done, messages.SUCCESS)

    @admin.action(
        description="Terminate selected drivers (and propose their refunds)…",
        permissions=["manage_exits"],
    )
    def terminate_drivers(
        self, request: HttpRequest, queryset: QuerySet[Driver]
    ) -> HttpResponse | None:
        asked = action_reason(
            self,
            request,
            queryset.order_by("driver_id"),
            title="Terminate drivers",
            explanation="Each driver's vehicle is freed and nothing posts to them any more; a "
            "refund of their deposit, less open debts, is proposed for a fleet manager to approve.",
            submit="Terminate",
        )
        if not isinstance(asked, str):
            return asked
        actor = roles.require(request.user, *roles.MANAGE_EXITS)

        def terminate(driver: Driver) -> str:
            refund = driver_terminate(driver_id=driver.driver_id, reason=asked, actor=actor)
            return (
                f"{driver.driver_id} terminated; refund {refund.pk} of {refund.amount} KSH "
                "proposed."
            )

        self._each(request, queryset, terminate)
        return None

    @admin.action(description="Archive selected terminated drivers", permissions=["manage_exits"])
    def archive_drivers(self, request: HttpRequest, queryset: QuerySet[Driver]) -> None:
        actor = roles.require(request.user, *roles.MANAGE_EXITS)

        def archive(driver: Driver) -> str:
            return f"{driver_archive(driver_id=driver.driver_id, actor=actor).driver_id} archived."

        self._each(request, queryset, archive)

    @admin.action(
        description="Restore selected terminated or archived drivers…",
        permissions=["manage_exits"],
    )
    def restore_drivers(
        self, request: HttpRequest, queryset: QuerySet[Driver]
    ) -> HttpResponse | None:
        asked = action_reason(
            self,
            request,
            queryset.order_by("driver_id"),
            title="Restore drivers",
            explanation="Each driver comes back with the balances they left with: the days away "
            "close as paused (no miss, no new debt), and a refund still waiting is withdrawn.",
            submit="Restore",
        )
        if not isinstance(asked, str):
            return asked
        actor = roles.require(request.user, *roles.MANAGE_EXITS)

        def restore(driver: Driver) -> str:
            restored = driver_restore(driver_id=driver.driver_id, reason=asked, actor=actor)
            return f"{restored.driver_id} restored ({restored.status})."

        self._each(request, queryset, restore)
        return None

    @admin.action(
        description="Reset consecutive misses (and lift the review flag)…",
        permissions=["reset_misses"],
    )
    def reset_misses(self, request: HttpRequest, queryset: QuerySet[Driver]) -> HttpResponse | None:
        asked = action_reason(
            self,
            request,
            queryset.order_by("driver_id"),
            title="Reset consecutive misses",
            explanation="Each driver's count of consecutive missed targets goes back to 0 and "
            "the termination-review flag is lifted; the previous count is kept in the event.",
            submit="Reset",
        )
        if not isinstance(asked, str):
            return asked
        actor = roles.require(request.user, roles.RESET_MISSES)

        def reset(driver: Driver) -> str:
            done = driver_misses_reset(driver_id=driver.driver_id, reason=asked, actor=actor)
            return f"{done.driver_id}: consecutive misses reset."

        self._each(request, queryset, reset)
        return None
