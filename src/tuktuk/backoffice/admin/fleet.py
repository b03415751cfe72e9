from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from tuktuk.backoffice.admin_utils import ReadOnlyInline
from tuktuk.backoffice.errors import admin_error
from tuktuk.backoffice.legacy import fix_driver_balance, reconcile_driver_balance
from tuktuk.backoffice.responses import statement_csv_response
from tuktuk.core.errors import OperatorError
from tuktuk.fleet.models import Driver, FleetSettings, Vehicle
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


@admin.register(Driver)
class DriverAdmin(admin.ModelAdmin):
    list_display = [
        "driver_id",
        "name",
        "mpesa_number",
        "vehicle",
        "current_balance",
        "left_to_target",
        "consecutive_misses",
        "flagged_for_review",
        "is_active",
    ]
    list_filter = ["is_active", "flagged_for_review", "target_sharing", "instant_payout"]
    search_fields = ["driver_id", "name", "mpesa_number", "vehicle__vehicle_id"]
    list_select_related = ["vehicle"]
    # The balance only ever changes through the ledger (posting, day close, reconciliation).
    readonly_fields = [
        "current_balance",
        "left_to_target",
        "balance_day",
        "consecutive_misses",
        "created_at",
        "updated_at",
        "verification_link",
        "statement_link",
    ]
    actions = ["reconciliation_check"]
    fieldsets = [
        (None, {"fields": ["driver_id", "name", "mpesa_number", "vehicle", "is_active"]}),
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
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [BalanceCorrectionInline, DayCloseInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "driver_id"] if obj else fields

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
