from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import QuerySet
from django.http import HttpRequest
from unfold.admin import ModelAdmin
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from tuktuk.backoffice.admin_utils import ReadOnlyAdmin
from tuktuk.backoffice.api_auth import api_tokens_revoke
from tuktuk.backoffice.models import ApiToken
from tuktuk.core.models import Event


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "level", "title", "driver", "message", "actor"]
    list_filter = ["level", "title", "created_at"]
    search_fields = ["title", "message", "driver", "actor"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens are created by `tuktuk create-api-token` (the only moment the token is shown);
    here they can only be looked at and revoked. The hash is not shown: it is of no use."""

    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["prefix", "name", "user__username"]
    list_select_related = ["user"]
    fields = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        # ReadOnlyAdmin denies "change" to everyone; revoking is governed by the model's
        # change permission all the same.
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description="Revoke selected API tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = api_tokens_revoke(
            token_ids=list(queryset.values_list("pk", flat=True)),
            actor=request.user.get_username(),
        )
        self.message_user(request, f"{count} API token(s) revoked.", messages.SUCCESS)


# Django's own user and group admins, in the theme's forms (django.contrib.auth registered
# them on the same site before ours were imported).
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    pass
