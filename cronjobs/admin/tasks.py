"""The task list and task pages (docs/architecture.md, "The control room").

Tasks are declared in code and the tasks file, so the admin changes `enabled` only and never
adds or deletes a task. Every change, a list toggle or an action, goes through
cronjobs.actions, which checks the permission and writes the audit entry.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from cronjobs import actions, schedules
from cronjobs.admin.changelist import FastInputsMixin
from cronjobs.admin.display import (
    ControlRoomMedia,
    execution_url,
    format_size,
    percent,
    run_url,
    when,
)
from cronjobs.models import Alert, Execution, Task
from cronjobs.reporting.health import TaskHealth, task_health
from cronjobs.tasksettings import STORED, Group
from cronjobs.templatetags.cronjobs_admin import badge

if TYPE_CHECKING:  # a TypedDict of django-stubs only
    from django.contrib.admin.options import _FieldOpts

RECENT_EXECUTIONS = 20
SNOOZE_CHOICES = (
    ("1h", "for 1 hour"),
    ("4h", "for 4 hours"),
    ("tomorrow", "until tomorrow 08:00"),
    ("custom", "until (custom):"),
)


class SnoozeActionForm(ActionForm):
    """The action bar's extra fields, read by the snooze action only."""

    snooze = forms.ChoiceField(choices=SNOOZE_CHOICES, required=False, label="Snooze")
    until = forms.CharField(
        required=False, label="", widget=forms.TextInput(attrs={"placeholder": "2026-12-01 18:00"})
    )


def snooze_end(choice: str, until: str, now: datetime | None = None) -> datetime:
    """The end of a snooze picked in the action bar, read by actions.snooze_end like every
    door's; ValueError says what is wrong."""
    if choice == "custom":
        if not until.strip():
            raise ValueError("give the date and time to snooze until")
        return actions.snooze_end(until=until)
    if choice not in dict(SNOOZE_CHOICES):
        raise ValueError("pick how long to snooze")
    return actions.snooze_end(choice, now=now)


# What the task page shows beside each section's settings (cronjobs.tasksettings declares the
# settings and their sections): identity first, figures after the settings.
SECTION_FIELDS: dict[Group, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Group.TASK: (("name",), ("kind", "target", "source")),
    Group.SCHEDULE: ((), ("schedule_in_words", "next_run")),
    Group.CHAINS: ((), ("downstream", "last_ran_on")),
    Group.LIMITS: ((), ()),
    Group.ALERTS: ((), ("snoozed_until",)),
}


def task_fieldsets() -> tuple[tuple[str | None, _FieldOpts], ...]:
    """The task page's sections: every stored setting in its declared section, then State."""
    sections: list[tuple[str | None, _FieldOpts]] = []
    for group, (before, after) in SECTION_FIELDS.items():
        shown = tuple(s.display_field for s in STORED if s.group == group)
        sections.append((str(group) or None, {"fields": (*before, *shown, *after)}))
    sections.append(("State", {"fields": ("circuit", "retired_at", "created_at", "updated_at")}))
    return tuple(sections)


class TaskChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        """Attach each task's health to the rows of this page: iterating fills the queryset's
        cache, so the template and the enabled-toggle formset see the same decorated rows."""
        super().get_results(request)
        rows: list[Task] = list(self.result_list)
        health = task_health(rows)
        for task in rows:
            task.health = health[task.pk]  # type: ignore[attr-defined]  # read by TaskAdmin._health


@admin.register(Task)
class TaskAdmin(FastInputsMixin[Task], admin.ModelAdmin[Task]):
    list_display = (
        "name",
        "enabled",
        "schedule_in_words",
        "next_run",
        "last_status",
        "last_run",
        "success_24h",
        "success_30d",
        "circuit",
        "snoozed",
        "priority",
    )
    list_display_links = ("name",)
    list_editable = ("enabled",)
    list_filter = ("enabled", "kind", ("retired_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "description")
    actions = ("enable", "disable", "run_now", "stop", "reset_circuit", "snooze", "unsnooze")
    action_form = SnoozeActionForm
    change_form_template = "admin/cronjobs/task/change_form.html"
    fieldsets = task_fieldsets()
    Media = ControlRoomMedia

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TaskChangeList

    def get_readonly_fields(self, request: HttpRequest, obj: Task | None = None) -> list[str]:
        fields = flatten_fieldsets(self.get_fieldsets(request, obj))
        return [field for field in fields if field != "enabled"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # declared in code or the tasks file, then `manage.py synctasks`

    def has_delete_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False  # a task that disappears is retired so its history stays

    def _health(self, obj: Task) -> TaskHealth:
        health: TaskHealth | None = getattr(obj, "health", None)
        if health is None:  # the change page: one task
            health = task_health([obj])[obj.pk]
            obj.health = health  # type: ignore[attr-defined]  # a per-request decoration
        return health

    @admin.display(description="schedule")
    def schedule_in_words(self, obj: Task) -> str:
        return self._health(obj).schedule_in_words

    @admin.display(description="next run")
    def next_run(self, obj: Task) -> str:
        """In the site's zone, and in the task's own when it has one."""
        moment = self._health(obj).next_run
        if moment is None or not obj.time_zone:
            return when(moment)
        local = schedules.in_zone(moment, obj.time_zone)
        return f"{when(moment)} ({local:%H:%M} {obj.time_zone})"

    @admin.display(description="last status")
    def last_status(self, obj: Task) -> SafeString:
        last = self._health(obj).last
        return badge(last.status if last else None)

    @admin.display(description="last run")
    def last_run(self, obj: Task) -> SafeString | str:
        last = self._health(obj).last
        if last is None:
            return "-"
        return format_html('<a href="{}">{}</a>', execution_url(last), when(last.started_at))

    @admin.display(description="success 24 h")
    def success_24h(self, obj: Task) -> str:
        day = self._health(obj).day
        return f"{percent(day.success_rate)} of {day.finished}"

    @admin.display(description="success 30 d")
    def success_30d(self, obj: Task) -> str:
        month = self._health(obj).month
        return f"{percent(month.success_rate)} of {month.finished}"

    @admin.display(description="circuit")
    def circuit(self, obj: Task) -> SafeString:
        return badge(self._health(obj).circuit)

    @admin.display(description="snoozed until")
    def snoozed(self, obj: Task) -> str:
        return when(obj.snoozed_until) if obj.is_snoozed() else ""

    @admin.display(description="runs after")
    def upstream(self, obj: Task) -> SafeString | str:
        return self._task_links(obj.upstream_names) or "- (its own schedule only)"

    @admin.display(description="runs before")
    def downstream(self, obj: Task) -> SafeString | str:
        after = Task.objects.filter(after__contains=obj.name).order_by("priority", "name")
        names = [task.name for task in after if obj.name in task.upstream_names]
        return self._task_links(names) or "-"

    def _task_links(self, names: list[str]) -> SafeString:
        tasks = {t.name: t.pk for t in Task.objects.filter(name__in=names)}
        links = [
            format_html(
                '<a href="{}">{}</a>',
                reverse("admin:cronjobs_task_change", args=[tasks[name]]),
                name,
            )
            if name in tasks
            else name
            for name in names
        ]
        return format_html_join(", ", "{}", ((link,) for link in links))

    @admin.display(description="may run on")
    def where_it_runs(self, obj: Task) -> str:
        return ", ".join(obj.host_names) or "any host"

    @admin.display(description="last ran on")
    def last_ran_on(self, obj: Task) -> str:
        last = obj.executions.exclude(status=Execution.Status.SKIPPED).only("host").first()
        return last.host if last else "-"

    @admin.display(description="ping URL")
    def ping_url_text(self, obj: Task) -> str:
        return actions.redacted(obj.ping_url) if obj.ping_url else "-"

    @admin.display(description="memory limit")
    def memory_limit_text(self, obj: Task) -> str:
        return format_size(obj.memory_limit)

    @admin.display(description="memory warning")
    def memory_warn_text(self, obj: Task) -> str:
        return format_size(obj.memory_warn)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = {
            "recent_executions": Execution.objects.filter(task_id=object_id)[:RECENT_EXECUTIONS],
            "open_alerts": Alert.objects.unresolved().filter(task_id=object_id),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def save_model(
        self, request: HttpRequest, obj: Task, form: forms.ModelForm[Task], change: bool
    ) -> None:
        """The list toggle and the task page change `enabled` only, through the action."""
        if "enabled" in form.changed_data:
            actions.set_enabled(actions.Actor.from_request(request), obj, obj.enabled)

    # Django ignores the entry log_change returns, and there is none to return.
    def log_change(self, request: HttpRequest, obj: Task, message: object) -> None:  # type: ignore[override]
        """cronjobs.actions wrote the audit entry already; one entry per change."""
        return None

    @admin.action(description="Enable the selected tasks", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable the selected tasks", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Task], enabled: bool) -> None:
        actor = actions.Actor.from_request(request)
        changed = sum(actions.set_enabled(actor, task, enabled) for task in queryset)
        word = "Enabled" if enabled else "Disabled"
        self.message_user(request, f"{word} {changed} task(s).")

    @admin.action(description="Run the selected tasks now", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        actor = actions.Actor.from_request(request)
        for task in queryset:
            try:
                run_id = actions.run_now(actor, task)
            except actions.ActionError as exc:
                self.message_user(request, f"Not started: {exc.message}.", messages.WARNING)
                continue
            self.message_user(
                request,
                format_html(
                    '{} started in the background: <a href="{}">run {}</a>',
                    task.name,
                    run_url(run_id),
                    run_id[:8],
                ),
            )

    @admin.action(description="Stop the selected tasks' runs", permissions=["change"])
    def stop(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        actor = actions.Actor.from_request(request)
        for task in queryset:
            try:
                run_id = actions.stop(actor, task)
            except actions.ActionError as exc:
                self.message_user(request, f"Not stopped: {exc.message}.", messages.WARNING)
                continue
            self.message_user(
                request,
                format_html(
                    '{}: stop requested for <a href="{}">run {}</a>; it ends within seconds.',
                    task.name,
                    run_url(run_id),
                    run_id[:8],
                ),
            )

    @admin.action(description="Reset the circuit breaker", permissions=["change"])
    def reset_circuit(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        actor = actions.Actor.from_request(request)
        tasks = list(queryset)
        for task in tasks:
            actions.reset_circuit(actor, task)
        self.message_user(request, f"Closed the circuit of {len(tasks)} task(s).")

    @admin.action(description="Snooze the selected tasks (pick how long)", permissions=["change"])
    def snooze(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        try:
            until = snooze_end(request.POST.get("snooze", ""), request.POST.get("until", ""))
            names = [
                name
                for task in queryset
                for name in actions.snooze(actions.Actor.from_request(request), task, until)
            ]
        except ValueError as exc:
            self.message_user(request, f"Not snoozed: {exc}.", messages.ERROR)
            return
        except actions.ActionError as exc:
            self.message_user(request, f"Not snoozed: {exc.message}.", messages.ERROR)
            return
        self.message_user(request, f"Snoozed {len(names)} task(s) until {when(until)}.")

    @admin.action(description="End the snooze of the selected tasks", permissions=["change"])
    def unsnooze(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        actor = actions.Actor.from_request(request)
        names = [name for task in queryset for name in actions.unsnooze(actor, task)]
        self.message_user(request, f"Ended the snooze of {len(names)} task(s).")
