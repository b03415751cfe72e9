from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from tuktuk.admin_utils import ReadOnlyInline
from tuktuk.fleet.models import Driver, FleetSettings, Vehicle
from tuktuk.ledger.models import BalanceCorrection, DayClose


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
        return not FleetSettings.objects.exists()

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
    fields = [
        "created_at",
        "business_day",
        "old_balance",
        "new_balance",
        "adjustment",
        "reason",
        "actor",
    ]
    readonly_fields = fields
    verbose_name_plural = "balance corrections (audit trail)"


class DayCloseInline(ReadOnlyInline):
    model = DayClose
    fields = [
        "business_day",
        "closing_balance",
        "cached_balance",
        "target",
        "target_met",
        "carried_over",
        "consecutive_misses",
    ]
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
    ]
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
                ]
            },
        ),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [BalanceCorrectionInline, DayCloseInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "driver_id"] if obj else fields
