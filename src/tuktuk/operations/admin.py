from __future__ import annotations

from django.contrib import admin

from tuktuk.admin_utils import ReadOnlyAdmin
from tuktuk.operations.models import Event


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "level", "title", "driver", "message", "actor"]
    list_filter = ["level", "title", "created_at"]
    search_fields = ["title", "message", "driver__driver_id", "actor"]
    list_select_related = ["driver"]
