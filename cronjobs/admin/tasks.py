"""The task list and task pages (docs/architecture.md, "The control room").

Tasks are declared in code and the tasks file, so the admin changes `enabled` only and never
adds or deletes a task. Every change, a list toggle, a bulk action or a button on a task's page
or in the Running now panel, goes through cronjobs.actions, which checks the permission and
writes the audit entry.

The list sorts by the last run's duration (a correlated subquery on the (task, started_at)
index, a few index reads per task) and by the 24-hour p95 (from the hour rollups' duration
histograms, read once per page for every task and handed to the database as a CASE, built
only when the list is sorted by it): neither reads the history's rows, so the list costs the
same on a million executions as on ten.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.contrib.admin.views.main import ORDER_VAR, ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Case, F, FloatField, OuterRef, QuerySet, Subquery, Value, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST

from cronjobs import actions, schedules, windows
from cronjobs.admin import badges
from cronjobs.admin.changelist import FastInputsMixin
from cronjobs.admin.display import (
    ControlRoomMedia,
    ObjectPagesMixin,
    execution_url,
    format_size,
    named,
    percent,
    run_url,
    seconds,
    when,
)
from cronjobs.models import Alert, Execution, MaintenanceWindow, Task
from cronjobs.reporting import stats
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


WINDOW_CHOICES = (
    ("1h", "for 1 hour"),
    ("2h", "for 2 hours"),
    ("4h", "for 4 hours"),
    ("8h", "for 8 hours"),
    ("1d", "for 1 day"),
)


class SnoozeActionForm(ActionForm):
    """The action bar's extra fields, read by the snooze and maintenance window actions."""

    snooze = forms.ChoiceField(choices=SNOOZE_CHOICES, required=False, label="Snooze")
    # A format, not a date: an example date reads as a value already filled in.
    until = forms.CharField(
        required=False, label="", widget=forms.TextInput(attrs={"placeholder": "YYYY-MM-DD HH:MM"})
    )
    window = forms.ChoiceField(choices=WINDOW_CHOICES, required=False, label="Window")
    window_mode = forms.ChoiceField(
        choices=MaintenanceWindow.Mode.choices, required=False, label=""
    )
    window_reason = forms.CharField(
        required=False, label="", widget=forms.TextInput(attrs={"placeholder": "reason"})
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


def with_durations(
    tasks: QuerySet[Task], day: dict[int, stats.TaskSummary], sort_by_p95: bool = True
) -> QuerySet[Task]:
    """The list's two sortable durations as annotations: `last_duration`, the last ended
    attempt's (the one the list shows, stats.last_executions), and `p95_24h`, from `day`,
    only `sort_by_p95`: a CASE of one branch per task took Django over a second to build with
    10,000 tasks, and the column reads the page's rows' p95 from their health instead."""
    last = Execution.objects.ended().filter(task_id=OuterRef("pk")).order_by("-started_at")
    p95 = [
        When(pk=task_id, then=Value(s.p95_duration))
        for task_id, s in day.items()
        if s.p95_duration is not None and sort_by_p95
    ]
    return tasks.annotate(
        last_duration=Subquery(last.values("duration")[:1]),
        p95_24h=Case(*p95, default=Value(None), output_field=FloatField())
        if p95
        else Value(None, output_field=FloatField()),
    )


class TaskChangeList(ChangeList):
    """Reads each task's 24-hour summary once per page (with the p95, which the list sorts by)
    and attaches every row's health, so the columns read no row of their own."""

    @cached_property
    def now(self) -> dt.datetime:
        return timezone.now()

    @cached_property
    def day(self) -> dict[int, stats.TaskSummary]:
        return stats.task_summaries(self.now - dt.timedelta(hours=24), self.now, with_p95=True)

    def get_queryset(
        self, request: HttpRequest, exclude_parameters: list[str | None] | None = None
    ) -> QuerySet[Task]:
        if not getattr(self, "_annotated", False):
            self.root_queryset = with_durations(self.root_queryset, self.day, self._sorts_by_p95)
            self._annotated = True
        return super().get_queryset(request, exclude_parameters)

    @property
    def _sorts_by_p95(self) -> bool:
        """Whether the `o` parameter (column indexes, as ChangeList.get_ordering reads them)
        names the p95 column."""
        columns = [part.lstrip("-") for part in str(self.params.get(ORDER_VAR, "")).split(".")]
        shown = len(self.list_display)
        # A stale or made-up index (any length of digits) is ignored, as Django does.
        indexes = [int(c) for c in columns if c.isdigit() and len(c) <= len(str(shown))]
        return "p95_24h" in [self.list_display[i] for i in indexes if i < shown]

    def get_results(self, request: HttpRequest) -> None:
        """Attach each task's health to the rows of this page: iterating fills the queryset's
        cache, so the template and the enabled-toggle formset see the same decorated rows."""
        super().get_results(request)
        rows: list[Task] = list(self.result_list)
        # The last attempts of this page's rows only, not 10,000 Execution objects.
        last = stats.last_executions(task_ids=[task.pk for task in rows])
        health = task_health(rows, self.now, day=self.day, last=last)
        calendar = windows.Calendar()  # one read of the windows for the whole page
        for task in rows:
            task.health = health[task.pk]  # type: ignore[attr-defined]  # read by TaskAdmin._health
            task.window = calendar.covering(task.name)  # type: ignore[attr-defined]  # .maintenance


@admin.register(Task)
class TaskAdmin(ObjectPagesMixin[Task], FastInputsMixin[Task], admin.ModelAdmin[Task]):
    # Fits 1440 px beside the filters; the rest (priority, limits, chains) is on the task's
    # page. On a phone the rows stack (cronjobs/static/cronjobs/admin.css).
    list_display = (
        "name",
        "enabled",
        "health",
        "last_run",
        "last_duration",
        "p95_24h",
        "success",
        "next_run_and_schedule",
        "circuit_and_snooze",
    )
    list_display_links = ("name",)
    list_editable = ("enabled",)
    list_filter = ("enabled", "kind", ("retired_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "description")
    actions = (
        "enable",
        "disable",
        "run_now",
        "stop",
        "reset_circuit",
        "snooze",
        "unsnooze",
        "open_window",
    )
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

    # "in words": the row above it is the schedule itself (the setting).
    @admin.display(description="in words")
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

    @admin.display(description="next run")
    def next_run_and_schedule(self, obj: Task) -> SafeString:
        health = self._health(obj)
        return format_html(
            '{}<br><span class="fc-muted">{}</span>', self.next_run(obj), health.schedule_in_words
        )

    @admin.display(description="health")
    def health(self, obj: Task) -> SafeString:
        health = self._health(obj)
        if not health.reasons:
            return badge(health.status)
        return format_html(
            '{}<br><span class="fc-reasons">{}</span>', badge(health.status), health.reasons
        )

    @admin.display(description="last run")
    def last_run(self, obj: Task) -> SafeString:
        last = self._health(obj).last
        if last is None:
            return badge(None)
        return format_html(
            '{} <a href="{}">{}</a>', badge(last.status), execution_url(last), when(last.started_at)
        )

    @admin.display(description="last took", ordering=F("last_duration").desc(nulls_last=True))
    def last_duration(self, obj: Task) -> str:
        return seconds(getattr(obj, "last_duration", None))

    @admin.display(description="p95 24 h", ordering=F("p95_24h").desc(nulls_last=True))
    def p95_24h(self, obj: Task) -> str:
        return seconds(self._health(obj).day.p95_duration)

    @admin.display(description="success")
    def success(self, obj: Task) -> SafeString:
        health = self._health(obj)
        day, month = health.day, health.month
        return format_html(
            '{} of {} <span class="fc-muted">24 h</span><br>'
            '{} of {} <span class="fc-muted">30 d</span>',
            percent(day.success_rate),
            day.finished,
            percent(month.success_rate),
            month.finished,
        )

    @admin.display(description="circuit")
    def circuit(self, obj: Task) -> SafeString:
        return badge(self._health(obj).circuit)

    @admin.display(description="circuit / snooze / window")
    def circuit_and_snooze(self, obj: Task) -> SafeString:
        """The circuit's state, with the snooze and the maintenance window on now below it."""
        lines = [badge(self._health(obj).circuit)]
        if obj.is_snoozed():
            lines.append(
                format_html(
                    '<span class="fc-muted">snoozed until {}</span>', when(obj.snoozed_until)
                )
            )
        window = self.maintenance(obj)
        if window:
            lines.append(format_html('<span class="fc-muted">{}</span>', window))
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines))

    @admin.display(description="snoozed until")
    def snoozed(self, obj: Task) -> str:
        return when(obj.snoozed_until) if obj.is_snoozed() else ""

    @admin.display(description="maintenance")
    def maintenance(self, obj: Task) -> SafeString | str:
        """The window the task is in now: its mode, reason and end."""
        if not hasattr(obj, "window"):  # the change page: one task
            obj.window = windows.Calendar().covering(obj.name)  # type: ignore[attr-defined]
        on: windows.Occurrence | None = obj.window  # type: ignore[attr-defined]
        if on is None:
            return ""
        return format_html(
            "{} until {}: {}", badge("maintenance", on.mode), when(on.end), on.window.reason
        )

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
        """The task page, with its recent attempts and open alerts; an id that names no task
        is a 404 (ObjectPagesMixin)."""
        task = self.get_object(request, unquote(object_id))
        extra = {
            "recent_executions": Execution.objects.filter(task=task)
            .select_related("task")
            .defer("output", "traceback")[:RECENT_EXECUTIONS],
            "open_alerts": Alert.objects.unresolved().filter(task=task),
            "snooze_choices": SNOOZE_CHOICES,
            "status_badges": badges.panel(request, task),
            "may_change_badges": request.user.has_perm(actions.TASK_PERMISSION),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self) -> list[URLPattern]:
        """The buttons of a task's page and of the Running now panel: one POST per action
        (`act/stop/<task name>/`), answered by a redirect back with a message."""
        view = self.admin_site.admin_view(require_POST(self.act_view))
        act = path("act/<str:action>/<str:name>/", view, name="cronjobs_task_act")
        # The status badges' buttons post to <task>/badge/ (cronjobs/admin/badges.py).
        badge = path(
            "<path:object_id>/badge/",
            self.admin_site.admin_view(badges.change_badge),
            name="cronjobs_task_badge",
        )
        return [act, badge, *super().get_urls()]

    def act_view(self, request: HttpRequest, action: str, name: str) -> HttpResponse:
        """Staff only and CSRF-checked (admin_view); the permission is the action's own
        (cronjobs.actions: `change task`), refused with a 403."""
        do = TASK_BUTTONS.get(action)
        if do is None:
            raise Http404(f"no action {action!r}")
        task = get_object_or_404(Task, name=name)
        try:
            level, message = do(actions.Actor.from_request(request), task, request)
        except actions.Forbidden as exc:
            raise PermissionDenied(exc.message) from None
        except actions.ActionError as exc:
            level, message = messages.WARNING, f"{exc.message}."
        except ValueError as exc:
            level, message = messages.ERROR, f"Not snoozed: {exc}."
        self.message_user(request, message, level)
        return HttpResponseRedirect(_back(request, task))

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
        changed = [task.name for task in queryset if actions.set_enabled(actor, task, enabled)]
        word = "Enabled" if enabled else "Disabled"
        already = "enabled" if enabled else "disabled"
        if not changed:
            self.message_user(request, f"Nothing changed: the tasks were {already} already.")
            return
        self.message_user(request, f"{word} {named(changed)}.")

    @admin.action(description="Run the selected tasks now", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        actor = actions.Actor.from_request(request)
        for task in queryset:
            try:
                level, message = _run_now(actor, task, request)
            except actions.ActionError as exc:
                level, message = messages.WARNING, f"Not started: {exc.message}."
            self.message_user(request, message, level)

    @admin.action(description="Stop the selected tasks' runs", permissions=["change"])
    def stop(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        actor = actions.Actor.from_request(request)
        for task in queryset:
            try:
                level, message = _stop(actor, task, request)
            except actions.ActionError as exc:
                level, message = messages.WARNING, f"Not stopped: {exc.message}."
            self.message_user(request, message, level)

    @admin.action(description="Reset the circuit breaker", permissions=["change"])
    def reset_circuit(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        actor = actions.Actor.from_request(request)
        tasks = list(queryset)
        for task in tasks:
            actions.reset_circuit(actor, task)
        self.message_user(request, f"Closed the circuit of {named([t.name for t in tasks])}.")

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
        self.message_user(request, f"Snoozed {named(names)} until {when(until)}.")

    @admin.action(
        description="Open a maintenance window for the selected tasks (pick length, mode, reason)",
        permissions=["change"],
    )
    def open_window(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        post = request.POST
        try:
            if post.get("window", "") not in dict(WINDOW_CHOICES):
                raise ValueError("pick how long the window lasts")
            window = actions.open_window(
                actions.Actor.from_request(request),
                [task.name for task in queryset],
                post.get("window_mode", ""),
                post.get("window_reason", ""),
                windows.window_end(post["window"]),
            )
        except ValueError as exc:
            self.message_user(request, f"No window opened: {exc}.", messages.ERROR)
            return
        except actions.ActionError as exc:
            self.message_user(request, f"No window opened: {exc.message}.", messages.ERROR)
            return
        self.message_user(
            request,
            f"Maintenance window {window.label} ({window.mode}) until {when(window.ends_at)} "
            f"for {window.tasks.replace(',', ', ')}.",
        )

    @admin.action(description="End the snooze of the selected tasks", permissions=["change"])
    def unsnooze(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        actor = actions.Actor.from_request(request)
        names = [name for task in queryset for name in actions.unsnooze(actor, task)]
        if not names:
            self.message_user(request, "Nothing changed: none of the tasks was snoozed.")
            return
        self.message_user(request, f"Ended the snooze of {named(names)}.")


# The buttons (a task's page, the Running now panel): each returns the message's level and text.
Outcome = tuple[int, "str | SafeString"]


def _run_now(actor: actions.Actor, task: Task, request: HttpRequest) -> Outcome:
    run_id = actions.run_now(actor, task)
    return messages.SUCCESS, format_html(
        'Started {} in the background: <a href="{}">run {}</a>.',
        task.name,
        run_url(run_id),
        run_id[:8],
    )


def _stop(actor: actions.Actor, task: Task, request: HttpRequest) -> Outcome:
    run_id = actions.stop(actor, task)
    return messages.SUCCESS, format_html(
        'Stop requested for {}, <a href="{}">run {}</a>: it ends within seconds.',
        task.name,
        run_url(run_id),
        run_id[:8],
    )


def _reset_circuit(actor: actions.Actor, task: Task, request: HttpRequest) -> Outcome:
    before = actions.reset_circuit(actor, task)
    if before == "closed":
        return messages.SUCCESS, f"The circuit of {task.name} was closed already; it stays closed."
    return (
        messages.SUCCESS,
        f"Closed the circuit of {task.name} (it was {before.replace('_', '-')}).",
    )


def _snooze(actor: actions.Actor, task: Task, request: HttpRequest) -> Outcome:
    until = snooze_end(request.POST.get("snooze", ""), request.POST.get("until", ""))
    actions.snooze(actor, task, until)
    return (
        messages.SUCCESS,
        f"Snoozed {task.name} until {when(until)}: no notifications until then.",
    )


def _unsnooze(actor: actions.Actor, task: Task, request: HttpRequest) -> Outcome:
    if not actions.unsnooze(actor, task):
        return messages.INFO, f"Nothing changed: {task.name} was not snoozed."
    return messages.SUCCESS, f"Ended the snooze of {task.name}."


TASK_BUTTONS: dict[str, Callable[[actions.Actor, Task, HttpRequest], Outcome]] = {
    "run": _run_now,
    "stop": _stop,
    "reset-circuit": _reset_circuit,
    "snooze": _snooze,
    "unsnooze": _unsnooze,
}


def _back(request: HttpRequest, task: Task) -> str:
    """Where the button was pressed (`next`, this site's own pages only), else the task's page."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("admin:cronjobs_task_change", args=[task.pk])
