from __future__ import annotations

from django.contrib import admin

from tuktuk.admin_utils import ReadOnlyAdmin
from tuktuk.ledger.models import BalanceCorrection, DayClose, LedgerEntry, Transaction


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
