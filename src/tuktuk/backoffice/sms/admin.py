"""The SMS message log in the admin: every message with its delivery state, and the provider's
delivery reports. Read-only: messages are queued by the services (`tuktuk sms send|broadcast`,
the worker) and retried with `tuktuk sms retry`."""

from __future__ import annotations

from django.contrib import admin

from tuktuk.backoffice.admin_utils import ReadOnlyAdmin, ReadOnlyInline
from tuktuk.backoffice.sms.models import DeliveryReport, SmsKind, SmsMessage, SmsState
from tuktuk.backoffice.sms.texts import LOGIN_CODE_REDACTED


class DeliveryReportInline(ReadOnlyInline):
    model = DeliveryReport
    fk_name = "message"
    fields = ("received_at", "status", "failure_reason", "network_code", "retry_count")
    readonly_fields = fields
    verbose_name_plural = "delivery reports from the provider"


@admin.register(SmsMessage)
class SmsMessageAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "kind",
        "driver",
        "phone",
        "state",
        "attempts",
        "provider_status",
        "sent_at",
        "delivered_at",
    ]
    list_filter = ["state", "kind", "gateway"]
    search_fields = ["driver__driver_id", "driver__name", "phone", "provider_message_id", "key"]
    list_select_related = ["driver"]
    date_hierarchy = "created_at"
    inlines = [DeliveryReportInline]
    fields = (
        "kind",
        "driver",
        "phone",
        "text",
        "state",
        "attempts",
        "next_attempt_at",
        "expires_at",
        "gateway",
        "provider_message_id",
        "provider_status",
        "provider_status_code",
        "cost",
        "network_code",
        "detail",
        "key",
        "created_by",
        "created_at",
        "claimed_by",
        "claimed_at",
        "sent_at",
        "delivered_at",
    )
    readonly_fields = fields

    @admin.display(description="text")
    def text(self, message: SmsMessage) -> str:
        # A login code waiting to be sent is in the outbox; nobody reads it here.
        if message.kind == SmsKind.LOGIN_CODE and message.state in (
            SmsState.QUEUED,
            SmsState.SENDING,
        ):
            return LOGIN_CODE_REDACTED
        return message.body


@admin.register(DeliveryReport)
class DeliveryReportAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at",
        "provider_message_id",
        "status",
        "failure_reason",
        "phone_number",
        "message",
        "applied_at",
    ]
    list_filter = ["status"]
    search_fields = ["provider_message_id", "phone_number"]
