"""The control room (design section 10): tasks, their history and their alerts.

Tasks are declared in code and the tasks file, so the admin changes `enabled` only and never
adds or deletes a task. The history is read-only and built for millions of rows (see
cronjobs/changelist.py). Every state change is a POST action that needs the model's change
permission and is written to Django's admin log with the user; exports need the view
permission and stream (cronjobs/export.py).
"""

from __future__ import annotations

import re

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from rangefilter.filters import DateRangeQuickSelectListFilterBuilder

from cronjobs.admin.changelist import LookaheadPaginator, page_number
from cronjobs.admin.export import StreamingExportMixin
from cronjobs.admin.resources import AlertResource, ExecutionResource
from cronjobs.models import Alert, Execution, Task
from cronjobs.reporting.health import task_health
from cronjobs.supervisor import alerts, circuit, runner
from cronjobs.supervisor.registry import format_size
from cronjobs.templatetags.cronjobs_admin import badge

RECENT_EXECUTIONS = 20
RUN_ID_RE = re.compile(r"^[0-9a-f]{6,32}$")
TEXT_MATCHES = 1000


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _when(moment) -> str:
    """Short local time for narrow columns: '29 Nov 07:05'."""
    return timezone.localtime(moment).strftime("%d %b %H:%M") if moment else "-"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def execution_url(execution: Execution) -> str:
    return reverse("admin:cronjobs_execution_change", args=[execution.pk])


def run_url(run_id: str) -> str:
    return reverse("admin:cronjobs_execution_changelist") + f"?run_id={run_id}"


class ControlRoomMedia:
    css = {"all": ("cronjobs/admin.css",)}


class TaskChangeList(ChangeList):
    def get_results(self, request) -> None:
        """Attach each task's health to the rows of this page: iterating fills the queryset's
        cache, so the template and the enabled-toggle formset see the same decorated rows."""
        super().get_results(request)
        rows = list(self.result_list)
        health = task_health(rows)
        for task in rows:
            task.health = health[task.pk]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "schedule_in_words", "next_run", "last_status", "last_run",
                    "success_24h", "success_30d", "circuit", "priority")  # fmt: skip
    list_display_links = ("name",)
    list_editable = ("enabled",)
    list_filter = ("enabled", "kind", ("retired_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "description")
    actions = ("enable", "disable", "run_now", "reset_circuit")
    change_form_template = "admin/cronjobs/task/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "enabled", "description", "kind", "target", "source")}),
        ("Schedule", {"fields": ("schedule", "schedule_in_words", "next_run", "priority")}),
        (
            "Limits",
            {
                "fields": (
                    "timeout",
                    "max_attempts",
                    "retry_delay",
                    "memory_limit_text",
                    "memory_warn_text",
                    "slow_after",
                    "circuit_breaker",
                    "alert_on_failure",
                    "log_level",
                )
            },
        ),
        ("State", {"fields": ("circuit", "retired_at", "created_at", "updated_at")}),
    )
    Media = ControlRoomMedia

    def get_changelist(self, request, **kwargs):
        return TaskChangeList

    def get_readonly_fields(self, request, obj=None):
        return [f for fs in self.fieldsets for f in fs[1]["fields"] if f != "enabled"]

    def has_add_permission(self, request) -> bool:
        return False  # declared in code or the tasks file, then `manage.py synctasks`

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a task that disappears is retired so its history stays

    def _health(self, obj: Task):
        if not hasattr(obj, "health"):  # the change page: one task
            obj.health = task_health([obj])[obj.pk]
        return obj.health

    @admin.display(description="schedule")
    def schedule_in_words(self, obj: Task) -> str:
        return self._health(obj).schedule_in_words

    @admin.display(description="next run")
    def next_run(self, obj: Task) -> str:
        return _when(self._health(obj).next_run)

    @admin.display(description="last status")
    def last_status(self, obj: Task):
        last = self._health(obj).last
        return badge(last.status if last else None)

    @admin.display(description="last run")
    def last_run(self, obj: Task):
        last = self._health(obj).last
        if last is None:
            return "-"
        return format_html('<a href="{}">{}</a>', execution_url(last), _when(last.started_at))

    @admin.display(description="success 24 h")
    def success_24h(self, obj: Task) -> str:
        day = self._health(obj).day
        return f"{_percent(day.success_rate)} of {day.finished}"

    @admin.display(description="success 30 d")
    def success_30d(self, obj: Task) -> str:
        month = self._health(obj).month
        return f"{_percent(month.success_rate)} of {month.finished}"

    @admin.display(description="circuit")
    def circuit(self, obj: Task):
        return badge(self._health(obj).circuit)

    @admin.display(description="memory limit")
    def memory_limit_text(self, obj: Task) -> str:
        return format_size(obj.memory_limit)

    @admin.display(description="memory warning")
    def memory_warn_text(self, obj: Task) -> str:
        return format_size(obj.memory_warn)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {
            "recent_executions": Execution.objects.filter(task_id=object_id)[:RECENT_EXECUTIONS],
            "open_alerts": Alert.objects.filter(task_id=object_id, open_key__isnull=False),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    @admin.action(description="Enable the selected tasks", permissions=["change"])
    def enable(self, request, queryset) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable the selected tasks", permissions=["change"])
    def disable(self, request, queryset) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        changed = list(queryset.exclude(enabled=enabled))
        for task in changed:
            task.enabled = enabled
            task.save(update_fields=["enabled", "updated_at"])
            self.log_change(request, task, [{"changed": {"fields": ["Enabled"]}}])
        word = "Enabled" if enabled else "Disabled"
        self.message_user(request, f"{word} {len(changed)} task(s).")

    @admin.action(description="Run the selected tasks now", permissions=["change"])
    def run_now(self, request, queryset) -> None:
        for task in queryset:
            if task.is_retired or not task.enabled:
                why = "is retired" if task.is_retired else "is disabled: enable it first"
                self.message_user(request, f"Not started: {task.name} {why}.", messages.WARNING)
                continue
            run_id = runner.start_in_background(task.name, Execution.Trigger.ADMIN)
            self.log_change(request, task, f"Run now (run {run_id})")
            self.message_user(
                request,
                format_html(
                    '{} started in the background: <a href="{}">run {}</a>',
                    task.name,
                    run_url(run_id),
                    run_id[:8],
                ),
            )

    @admin.action(description="Reset the circuit breaker", permissions=["change"])
    def reset_circuit(self, request, queryset) -> None:
        for task in queryset:
            circuit.reset(task, by=request.user.get_username())
            self.log_change(request, task, "Circuit reset")
        self.message_user(request, f"Closed the circuit of {queryset.count()} task(s).")


@admin.register(Execution)
class ExecutionAdmin(StreamingExportMixin, admin.ModelAdmin):
    list_display = ("started_at", "task", "status_badge", "attempt", "trigger", "duration_text",
                    "peak_memory", "host", "exit_code", "error_summary", "run")  # fmt: skip
    list_display_links = ("started_at",)
    list_filter = (
        "status",
        "trigger",
        "task",
        ("started_at", DateRangeQuickSelectListFilterBuilder(title="started")),
    )
    search_fields = ("run_id", "task__name", "host", "error")
    search_help_text = (
        "A run id (or its first 6+ characters), a task name, or a host or error text "
        f"(the newest {TEXT_MATCHES:,} matches)."
    )
    date_hierarchy = "started_at"
    list_select_related = ("task",)
    list_per_page = 100
    list_max_show_all = 0  # "show all" would load every row
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts are full scans
    paginator = LookaheadPaginator
    actions = None
    resource_classes = [ExecutionResource]
    change_list_template = "admin/cronjobs/execution/change_list.html"
    fieldsets = (
        (None, {"fields": ("task_link", "status_badge", "skip_reason", "error", "run_attempts")}),
        (
            "Attempt",
            {
                "fields": (
                    "run_id",
                    "attempt",
                    "trigger",
                    "host",
                    "pid",
                    "started_at",
                    "finished_at",
                    "duration_text",
                    "exit_code",
                    "signal",
                )
            },
        ),
        ("Resources", {"fields": ("peak_memory", "cpu_user", "cpu_system")}),
        ("Output", {"fields": ("output_tail", "traceback_text")}),
    )
    Media = ControlRoomMedia

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        return self.paginator(queryset, per_page, page_number=page_number(request))

    def get_readonly_fields(self, request, obj=None):
        return [f for fs in self.fieldsets for f in fs[1]["fields"]]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # history is written by the runner only

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # `manage.py prune_history` removes old rows

    def get_search_results(self, request, queryset, search_term):
        """A run id (or a prefix of 6+ hex digits) searches the indexed run_id alone, and a
        task name is matched in the small task table first. Other text is LIKE '%term%' on
        host and error, which no index serves: the newest TEXT_MATCHES matches are found in
        one backward walk of the primary key (sequential; 2 s for a miss over a million rows),
        where the page's ORDER BY started_at would fetch every row at random (30 s)."""
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        if RUN_ID_RE.match(term):
            # istartswith is LIKE 'term%', which MySQL serves from the run_id index; the
            # case-sensitive startswith is LIKE BINARY, which it cannot. Run ids are lower-case.
            return queryset.filter(run_id__istartswith=term), False
        task_ids = list(Task.objects.filter(name__icontains=term).values_list("pk", flat=True))
        if task_ids:
            return queryset.filter(task_id__in=task_ids), False
        matches = queryset.filter(Q(host__icontains=term) | Q(error__icontains=term))
        newest = matches.order_by("-pk").values_list("pk", flat=True)[:TEXT_MATCHES]
        return queryset.filter(pk__in=list(newest)), False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Execution):
        label = f"skipped: {obj.skip_reason}" if obj.skip_reason else None
        return badge(obj.status, label)

    @admin.display(description="duration", ordering="duration")
    def duration_text(self, obj: Execution) -> str:
        return _seconds(obj.duration)

    @admin.display(description="peak memory", ordering="peak_rss_bytes")
    def peak_memory(self, obj: Execution) -> str:
        return format_size(obj.peak_rss_bytes)

    @admin.display(description="error")
    def error_summary(self, obj: Execution) -> str:
        return truncatechars(obj.error, 80)

    @admin.display(description="run")
    def run(self, obj: Execution):
        return format_html('<a href="{}">{}</a>', run_url(obj.run_id), obj.run_id[:8])

    @admin.display(description="task")
    def task_link(self, obj: Execution):
        url = reverse("admin:cronjobs_task_change", args=[obj.task_id])
        return format_html('<a href="{}">{}</a>', url, obj.task.name)

    @admin.display(description="output (tail)")
    def output_tail(self, obj: Execution):
        return format_html('<pre class="fc-output">{}</pre>', obj.output or "(no output)")

    @admin.display(description="traceback")
    def traceback_text(self, obj: Execution):
        return (
            format_html('<pre class="fc-output">{}</pre>', obj.traceback) if obj.traceback else "-"
        )

    @admin.display(description="attempts of this run")
    def run_attempts(self, obj: Execution):
        attempts = Execution.objects.filter(run_id=obj.run_id).order_by("attempt")
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (execution_url(a), a.attempt, badge(a.status), a.started_at, _seconds(a.duration),
                 a.error)
                for a in attempts
            ),
        )  # fmt: skip
        return format_html('<table class="fc-attempts">{}</table>', rows)


@admin.register(Alert)
class AlertAdmin(StreamingExportMixin, admin.ModelAdmin):
    list_display = ("last_seen", "task", "kind", "severity_badge", "state_badge", "message_text",
                    "occurrences", "first_seen", "acknowledged_by", "resolved_at")  # fmt: skip
    list_filter = ("state", "kind", "severity", "task")
    search_fields = ("message", "task__name")
    list_select_related = ("task", "acknowledged_by")
    actions = ("acknowledge", "resolve")
    resource_classes = [AlertResource]
    readonly_fields = ("task", "kind", "severity", "state", "message", "occurrences", "first_seen",
                       "last_seen", "notified_at", "acknowledged_by", "acknowledged_at",
                       "resolved_at")  # fmt: skip
    fields = readonly_fields
    Media = ControlRoomMedia

    def has_add_permission(self, request) -> bool:
        return False  # raised by the runner and the watchdog

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # The actions need the change permission; a single alert's page has nothing to edit.
        return obj is None and super().has_change_permission(request)

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, obj: Alert):
        return badge(obj.severity)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: Alert):
        return badge(obj.state)

    @admin.display(description="message")
    def message_text(self, obj: Alert) -> str:
        return truncatechars(obj.message, 100)

    @admin.action(description="Acknowledge the selected alerts", permissions=["change"])
    def acknowledge(self, request, queryset) -> None:
        open_alerts = list(queryset.filter(state=Alert.State.OPEN))
        for alert in open_alerts:
            alerts.acknowledge(alert, request.user)
            self.log_change(request, alert, "Acknowledged")
        self.message_user(request, f"Acknowledged {len(open_alerts)} alert(s).")

    @admin.action(description="Resolve the selected alerts", permissions=["change"])
    def resolve(self, request, queryset) -> None:
        unresolved = list(queryset.exclude(state=Alert.State.RESOLVED))
        for alert in unresolved:
            alerts.resolve(alert, by=request.user.get_username())
            self.log_change(request, alert, "Resolved")
        self.message_user(request, f"Resolved {len(unresolved)} alert(s).")
