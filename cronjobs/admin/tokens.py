"""Admin for API tokens. Adding a token generates its secret and shows it once in a message;
only the hash is stored, so the change form never shows it again."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone

from cronjobs import tokens
from cronjobs.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "prefix",
        "read_only",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("read_only", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def get_fields(self, request, obj=None):
        return (
            ("name", "read_only") if obj is None else ("name", "read_only", *self.readonly_fields)
        )

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        secret = tokens.new_secret()
        tokens.set_secret(obj, secret)
        obj.created_by = request.user
        super().save_model(request, obj, form, change)
        messages.warning(
            request, f"Secret for {obj.name!r} (copy it now, it is not shown again): {secret}"
        )

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).")
