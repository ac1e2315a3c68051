"""The execution history: read-only, searchable, exportable, built for millions of rows
(cronjobs/admin/changelist.py explains the paginator, cronjobs/admin/export.py the export).
Superusers also get an Import button for Smart Cron V2 history (LegacyMetricsResource: a dry
run first, then confirm; `manage.py import_legacy_metrics` for big files). An upload over the
admin's limits (LegacyMetricsResource.ADMIN_BYTE_LIMIT bytes, ADMIN_ROW_LIMIT rows) is refused
by the form, which counts rows as it streams the file and stops at the limit, before anything
parses the whole file."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from import_export.admin import ImportMixin
from import_export.formats import base_formats
from import_export.forms import ImportForm
from rangefilter.filters import DateRangeQuickSelectListFilterBuilder

from cronjobs.admin import search
from cronjobs.admin.changelist import FastInputsMixin, LookaheadPaginator, page_number
from cronjobs.admin.display import (
    ControlRoomMedia,
    ObjectPagesMixin,
    execution_url,
    format_size,
    run_url,
    seconds,
    when,
)
from cronjobs.admin.export import StreamingExportMixin
from cronjobs.admin.resources import ExecutionResource
from cronjobs.legacy import import_limits
from cronjobs.legacy.resource import LegacyMetricsResource
from cronjobs.models import Execution
from cronjobs.templatetags.cronjobs_admin import badge


class HistoryChangeList(ChangeList):
    """The list shows neither the output tail nor the traceback: a page of 50 rows does not
    read up to 50 x 64 KiB of output it never displays (the export defers them too).

    The page's tasks come in a second query rather than a join: joined, a filter on several
    tasks (a search for part of a task name) lets MySQL read the task table first and then
    every execution of those tasks to sort them, 20 s on a million rows, where the page alone
    is a walk of the started_at index that stops after 51 rows."""

    def get_queryset(
        self, request: HttpRequest, exclude_parameters: list[str | None] | None = None
    ) -> QuerySet[Execution]:
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer("output", "output_bytes", "traceback").prefetch_related("task")


class LimitedImportForm(ImportForm):  # type: ignore[misc]  # import_export has no types
    """The import form, refusing a file over the admin's limits before it is parsed."""

    def __init__(self, formats: list[type[base_formats.Format]], *args: Any, **kwargs: Any):
        super().__init__(formats, *args, **kwargs)
        self.formats = formats

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean()
        upload, choice = cleaned.get("import_file"), cleaned.get("format")
        if upload is None or choice in (None, ""):
            return cleaned
        problem = import_limits.problem(upload, self.formats[int(str(choice))])
        if problem:
            self.add_error("import_file", f"{problem}; use manage.py import_legacy_metrics")
        return cleaned


@admin.register(Execution)
class ExecutionAdmin(
    ObjectPagesMixin[Execution],
    FastInputsMixin[Execution],
    ImportMixin,  # type: ignore[misc]  # import_export has no types
    StreamingExportMixin,
    admin.ModelAdmin[Execution],
):
    # Fits 1440 px beside the filters: the job's own memory, exit code, signal and CPU are on
    # the attempt's page. On a phone the rows stack (cronjobs/static/cronjobs/admin.css).
    list_display = (
        "started_at",
        "task",
        "status_badge",
        "run",
        "duration_text",
        "peak_memory",
        "host",
        "error_summary",
    )
    list_display_links = ("started_at",)
    list_filter = (
        "status",
        "trigger",
        "task",
        ("started_at", DateRangeQuickSelectListFilterBuilder(title="started")),
    )
    # Shows the search box; get_search_results decides what a term finds.
    search_fields = ("run_id", "task__name", "host", "error")
    search_help_text = search.help_text()  # names the rule of this process's database
    date_hierarchy = "started_at"
    list_select_related = ()  # HistoryChangeList prefetches the tasks
    # Fifty rows of twelve columns render in ~20 ms; a hundred took a busy web host's CPU.
    list_per_page = 50
    list_max_show_all = 0  # "show all" would load every row
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts are full scans
    paginator = LookaheadPaginator
    actions = None
    resource_classes = [ExecutionResource]
    import_form_class = LimitedImportForm
    import_formats = [base_formats.CSV, base_formats.TSV, base_formats.XLSX]
    import_export_change_list_template = "admin/import_export/change_list_import_export.html"
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
                    "scheduled_for",
                    "started_at",
                    "start_lag_text",
                    "finished_at",
                    "duration_text",
                    "exit_code",
                    "signal",
                    "upstream_run",
                    "stopped_by",
                )
            },
        ),
        ("Resources", {"fields": ("peak_memory", "job_memory", "cpu_user", "cpu_system")}),
        ("Output", {"fields": ("output_tail", "traceback_text")}),
    )

    class Media(ControlRoomMedia):
        js = ("cronjobs/live_output.js",)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return HistoryChangeList

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Execution],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator[Execution]:
        return self.paginator(queryset, per_page, page_number=page_number(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Execution | None = None) -> list[str]:
        return flatten_fieldsets(self.get_fieldsets(request, obj))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_import_permission(self, request: HttpRequest) -> bool:
        """Importing writes history no runner recorded: superusers only."""
        return bool(request.user.is_active and request.user.is_superuser)

    def get_import_resource_classes(
        self, request: HttpRequest
    ) -> list[type[LegacyMetricsResource]]:
        return [LegacyMetricsResource]

    def has_change_permission(self, request: HttpRequest, obj: Execution | None = None) -> bool:
        return False  # history is written by the runner only

    def has_delete_permission(self, request: HttpRequest, obj: Execution | None = None) -> bool:
        return False  # `manage.py prune_history` removes old rows

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Execution], search_term: str
    ) -> tuple[QuerySet[Execution], bool]:
        """What a term means, and how each kind is found: cronjobs/admin/search.py."""
        return search.matching(queryset, search_term), False

    @admin.display(description="after the run")
    def upstream_run(self, obj: Execution) -> SafeString | str:
        """Trigger `after`: the upstream run whose success started this one."""
        if not obj.upstream_run_id:
            return "-"
        return format_html(
            '<a href="{}">{}</a>', run_url(obj.upstream_run_id), obj.upstream_run_id[:8]
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Execution) -> SafeString:
        label = f"skipped: {obj.skip_reason}" if obj.skip_reason else None
        return badge(obj.status, label)

    @admin.display(description="start lag", ordering="start_lag")
    def start_lag_text(self, obj: Execution) -> str:
        """How late the run began after its slot, jitter left out; '-' when it had no slot."""
        return seconds(obj.start_lag)

    @admin.display(description="duration", ordering="duration")
    def duration_text(self, obj: Execution) -> str:
        return seconds(obj.duration)

    @admin.display(description="peak memory", ordering="peak_rss_bytes")
    def peak_memory(self, obj: Execution) -> str:
        return format_size(obj.peak_rss_bytes)

    @admin.display(description="job memory")
    def job_memory(self, obj: Execution) -> str:
        """What the job itself used: a function's growth over its worker's baseline, a
        command's own peak (the worker's interpreter pages are never billed to the job)."""
        return format_size(obj.job_memory_bytes)

    @admin.display(description="error")
    def error_summary(self, obj: Execution) -> str:
        return truncatechars(obj.error, 120)

    @admin.display(description="run")
    def run(self, obj: Execution) -> SafeString:
        """The run's attempts behind its id, the attempt's number, and what started it."""
        return format_html(
            '<a href="{}">{}</a>&nbsp;#{}<br><span class="fc-muted">{}</span>',
            run_url(obj.run_id),
            obj.run_id[:8],
            obj.attempt,
            obj.get_trigger_display(),
        )

    @admin.display(description="task")
    def task_link(self, obj: Execution) -> SafeString:
        url = reverse("admin:cronjobs_task_change", args=[obj.task_id])
        return format_html('<a href="{}">{}</a>', url, obj.task.name)

    @admin.display(description="output (tail)")
    def output_tail(self, obj: Execution) -> SafeString:
        """A running attempt's output is followed live by cronjobs/static/cronjobs/live_output.js
        from GET /api/runs/<run_id>/output/, starting where the page's text ends."""
        if obj.status != Execution.Status.RUNNING:
            return format_html('<pre class="fc-output">{}</pre>', obj.output or "(no output)")
        url = reverse("api-run-output", args=[obj.run_id]) + f"?attempt={obj.attempt}"
        size = obj.output_from(0, 0).size
        return format_html(
            '<p class="fc-live-note" id="fc-live-note" aria-live="polite">following the output'
            ' live</p><pre class="fc-output" id="fc-live-output" data-url="{}" data-offset="{}"'
            ' data-run-url="{}">{}</pre>',
            url,
            size,
            run_url(obj.run_id),
            obj.output,
        )

    @admin.display(description="traceback")
    def traceback_text(self, obj: Execution) -> SafeString | str:
        return (
            format_html('<pre class="fc-output">{}</pre>', obj.traceback) if obj.traceback else "-"
        )

    @admin.display(description="attempts of this run")
    def run_attempts(self, obj: Execution) -> SafeString:
        attempts = Execution.objects.filter(run_id=obj.run_id).order_by("attempt")
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    execution_url(a),
                    a.attempt,
                    badge(a.status),
                    when(a.started_at),
                    seconds(a.duration),
                    a.error,
                )
                for a in attempts
            ),
        )
        return format_html('<table class="fc-attempts">{}</table>', rows)
