"""Maintenance windows: the list (on now, coming, recently over), a form that opens a one-off
window, and the action that ends one; every change through cronjobs.actions. Recurring windows
come from the tasks file and are shown, never edited here (docs/admin.md, "Maintenance
windows")."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from cronjobs import actions, windows
from cronjobs.admin.display import ControlRoomMedia, when
from cronjobs.models import MaintenanceWindow
from cronjobs.templatetags.cronjobs_admin import badge

LENGTH_CHOICES = (
    ("30m", "30 minutes"),
    ("1h", "1 hour"),
    ("2h", "2 hours"),
    ("4h", "4 hours"),
    ("8h", "8 hours"),
    ("1d", "1 day"),
    ("custom", "until (custom)"),
)


class WindowForm(forms.ModelForm[MaintenanceWindow]):
    """A one-off window from now: its tasks, mode, reason and length, checked by the same rules
    as every door (cronjobs.actions.window_tasks, cronjobs.windows.window_end)."""

    length = forms.ChoiceField(choices=LENGTH_CHOICES, initial="2h", label="For")
    until = forms.CharField(
        required=False,
        help_text="With 'until (custom)': an ISO 8601 date and time, e.g. 2026-12-01 06:00",
    )

    class Meta:
        model = MaintenanceWindow
        fields = ("tasks", "mode", "reason")
        help_texts = {"tasks": 'Task names, comma-separated, or "*" for every task'}

    def clean_tasks(self) -> str:
        try:
            return ",".join(actions.window_tasks(self.cleaned_data["tasks"].split(",")))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        length, until = data.get("length", ""), data.get("until", "")
        try:
            if length == "custom":
                end = windows.window_end(until=until or "")
            else:
                end = windows.window_end(length)
            data["ends_at"] = windows.check_end(end)
        except ValueError as exc:
            self.add_error("until" if length == "custom" else "length", str(exc))
        return data


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin[MaintenanceWindow]):
    list_display = ("label_text", "state", "mode", "tasks", "reason", "when_text", "created_by")
    list_filter = ("mode", "recurring")
    search_fields = ("name", "tasks", "reason")
    actions = ("end_now",)
    form = WindowForm
    Media = ControlRoomMedia
    readonly_fields = (
        "name",
        "recurring",
        "tasks",
        "mode",
        "reason",
        "when_text",
        "start",
        "duration",
        "time_zone",
        "starts_at",
        "ends_at",
        "created_by",
        "created_at",
        "ended_by",
        "retired_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[MaintenanceWindow]:
        return MaintenanceWindow.objects.live()

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        self.calendar = windows.Calendar()  # one read of the windows for the whole page
        return super().get_changelist_instance(request)

    def get_fields(self, request: HttpRequest, obj: MaintenanceWindow | None = None) -> Any:
        if obj is None:
            return ("tasks", "mode", "reason", "length", "until")
        return self.readonly_fields

    def get_readonly_fields(
        self, request: HttpRequest, obj: MaintenanceWindow | None = None
    ) -> Any:
        return () if obj is None else self.readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        # One permission opens and ends windows at every door (cronjobs.actions).
        return request.user.has_perm(actions.WINDOW_PERMISSION)

    def has_change_permission(
        self, request: HttpRequest, obj: MaintenanceWindow | None = None
    ) -> bool:
        # The action needs the change permission; a window's page has nothing to edit.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(
        self, request: HttpRequest, obj: MaintenanceWindow | None = None
    ) -> bool:
        return False  # ended, not deleted: the history of what was skipped stays explained

    def save_model(
        self,
        request: HttpRequest,
        obj: MaintenanceWindow,
        form: forms.ModelForm[MaintenanceWindow],
        change: bool,
    ) -> None:
        data = form.cleaned_data
        window = actions.open_window(
            actions.Actor.from_request(request),
            data["tasks"].split(","),
            data["mode"],
            data["reason"],
            data["ends_at"],
        )
        obj.pk, obj.ends_at = window.pk, window.ends_at

    # Django ignores the entry log_addition returns, and there is none to return.
    def log_addition(self, request: HttpRequest, obj: MaintenanceWindow, message: object) -> None:  # type: ignore[override]
        """cronjobs.actions wrote the audit entry already; one entry per change."""
        return None

    @admin.display(description="window", ordering="name")
    def label_text(self, obj: MaintenanceWindow) -> str:
        return obj.label

    @admin.display(description="state")
    def state(self, obj: MaintenanceWindow) -> Any:
        calendar = getattr(self, "calendar", None) or windows.Calendar()
        on = calendar.occurrence_at(obj, calendar.now)
        if on is not None:
            return badge("maintenance", f"on until {when(on.end)}")
        start = calendar.next_start(obj)
        return f"next {when(start)}" if start else "over"

    @admin.display(description="when")
    def when_text(self, obj: MaintenanceWindow) -> str:
        if obj.recurring:
            return f"'{obj.start}' ({obj.time_zone}) for {_hours(obj.duration)}"
        return f"{when(obj.starts_at)} to {when(obj.ends_at)}"

    @admin.action(description="End the selected windows now", permissions=["change"])
    def end_now(self, request: HttpRequest, queryset: QuerySet[MaintenanceWindow]) -> None:
        actor = actions.Actor.from_request(request)
        ended = 0
        for window in queryset:
            try:
                ended += actions.end_window(actor, window)
            except actions.ActionError as exc:
                self.message_user(request, f"Not ended: {exc.message}.", messages.WARNING)
        self.message_user(request, f"Ended {ended} window(s).")


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:g} h"
