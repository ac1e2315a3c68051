"""Alerts: list, filter, export, acknowledge and resolve (through cronjobs.actions)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import truncatechars
from django.utils.safestring import SafeString

from cronjobs import actions
from cronjobs.admin.changelist import FastInputsMixin
from cronjobs.admin.display import ControlRoomMedia, ObjectPagesMixin
from cronjobs.admin.export import StreamingExportMixin
from cronjobs.admin.resources import AlertResource
from cronjobs.models import Alert
from cronjobs.templatetags.cronjobs_admin import badge


@admin.register(Alert)
class AlertAdmin(
    ObjectPagesMixin[Alert],
    FastInputsMixin[Alert],
    StreamingExportMixin,
    admin.ModelAdmin[Alert],
):
    list_display = (
        "last_seen",
        "task",
        "kind",
        "severity_badge",
        "state_badge",
        "message_text",
        "occurrences",
        "first_seen",
        "acknowledged_by",
        "resolved_at",
    )
    list_filter = ("state", "kind", "severity", "task")
    search_fields = ("message", "task__name")
    list_select_related = ("task", "acknowledged_by")
    actions = ("acknowledge", "resolve")
    resource_classes = [AlertResource]
    readonly_fields = (
        "task",
        "kind",
        "severity",
        "state",
        "message",
        "occurrences",
        "first_seen",
        "last_seen",
        "notified_at",
        "acknowledged_by",
        "acknowledged_at",
        "resolved_at",
    )
    fields = readonly_fields
    Media = ControlRoomMedia

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # raised by the runner and the watchdog

    def has_delete_permission(self, request: HttpRequest, obj: Alert | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Alert | None = None) -> bool:
        # The actions need the change permission; a single alert's page has nothing to edit.
        return obj is None and super().has_change_permission(request)

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, obj: Alert) -> SafeString:
        return badge(obj.severity)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: Alert) -> SafeString:
        return badge(obj.state)

    @admin.display(description="message")
    def message_text(self, obj: Alert) -> str:
        return truncatechars(obj.message, 100)

    @admin.action(description="Acknowledge the selected alerts", permissions=["change"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        actor = actions.Actor.from_request(request)
        done = sum(actions.acknowledge(actor, alert) for alert in queryset.select_related("task"))
        self.message_user(request, f"Acknowledged {done} alert(s).")

    @admin.action(description="Resolve the selected alerts", permissions=["change"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        actor = actions.Actor.from_request(request)
        done = sum(actions.resolve(actor, alert) for alert in queryset.select_related("task"))
        self.message_user(request, f"Resolved {done} alert(s).")
