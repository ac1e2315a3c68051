"""Alerts: list, filter, export, acknowledge and resolve (through cronjobs.actions)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from cronjobs import actions
from cronjobs.admin.changelist import FastInputsMixin
from cronjobs.admin.display import ControlRoomMedia, ObjectPagesMixin, named
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
    # Fits 1440 px beside the filters, the message getting the room; first seen, who
    # acknowledged and when it was resolved are on the alert's page. On a phone rows stack.
    list_display = (
        "last_seen",
        "task",
        "kind",
        "severity_badge",
        "state_badge",
        "message_text",
        "occurrences",
        "repeats",
        "incident_link",
    )
    list_filter = ("state", "kind", "severity", "task")
    search_fields = ("message", "task__name")
    list_select_related = ("task", "acknowledged_by", "incident__task")
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
        "repeats",
        "escalated_at",
        "incident_link",
        "folded_alerts",
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
        return truncatechars(obj.message, 200)

    @admin.display(description="incident", ordering="incident")
    def incident_link(self, obj: Alert) -> SafeString | str:
        """The open incident this alert was folded into (one page per incident)."""
        if obj.incident is None:
            return "-"
        url = reverse("admin:cronjobs_alert_change", args=[obj.incident_id])
        return format_html('<a href="{}">{}</a>', url, obj.incident.summary)

    @admin.display(description="folded into this incident")
    def folded_alerts(self, obj: Alert) -> SafeString | str:
        folded = list(obj.folded.select_related("task").order_by("first_seen"))
        if not folded:
            return "-"
        links = [(reverse("admin:cronjobs_alert_change", args=[a.pk]), a.summary) for a in folded]
        return format_html_join(", ", '<a href="{}">{}</a>', links)

    @admin.action(description="Acknowledge the selected alerts", permissions=["change"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        actor = actions.Actor.from_request(request)
        done = [_name(a) for a in queryset.select_related("task") if actions.acknowledge(actor, a)]
        if not done:
            self.message_user(request, "Nothing changed: only open alerts can be acknowledged.")
            return
        self.message_user(request, f"Acknowledged {named(done)}.")

    @admin.action(description="Resolve the selected alerts", permissions=["change"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        actor = actions.Actor.from_request(request)
        done = [_name(a) for a in queryset.select_related("task") if actions.resolve(actor, a)]
        if not done:
            self.message_user(request, "Nothing changed: the alerts were resolved already.")
            return
        self.message_user(request, f"Resolved {named(done)}.")


def _name(alert: Alert) -> str:
    """'the failed alert of heartbeat', for a message."""
    return f"the {alert.kind.replace('_', ' ')} alert of {alert.task.name}"
