"""The admin of API tokens."""
from __future__ import annotations

from django.contrib import admin

from statuspage.models import ApiToken, apitoken_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made with `manage.py apitoken create` (the only time the token is shown); here
    they are seen and revoked."""

    list_display = ["name", "prefix", "scope", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope"]
    fields = ["name", "prefix", "scope", "user", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "scope", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for token in queryset.filter(revoked_at__isnull=True):
            apitoken_revoke(prefix=token.prefix)
