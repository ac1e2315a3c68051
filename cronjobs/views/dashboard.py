"""The dashboard inside the admin (docs/admin.md, "Dashboard"): health per task, the 30-day summary,
daily trends, open alerts, maintenance windows on now, circuits, recent failures and charts.

Every figure is an aggregate from reporting.stats or reporting.health; the only rows read are
the few on display (alerts, circuits, the latest failures). The page refreshes its content
in place every minute (cronjobs/static/cronjobs/dashboard.js asks for ?partial=1).

The content holds nothing that depends on who looks at it, so it is rendered at most once per
CRONJOBS_DASHBOARD_CACHE_SECONDS for every worker and host (the shared database cache) and
says the time its figures are "as of". Without it, every open dashboard would repeat the
queries each minute (about 0.2 s on ten million executions, docs/benchmarks.md); the charts
themselves are plain SVG strings, about 0.1 ms each (cronjobs/views/charts.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from cronjobs import actions, windows
from cronjobs.models import Alert, CircuitState, Task
from cronjobs.reporting import stats
from cronjobs.reporting.health import (
    MONTH_DAYS,
    FailedRun,
    TaskHealth,
    recent_failed_runs,
    task_health,
)
from cronjobs.views import charts

TREND_DAYS = MONTH_DAYS
RECENT_FAILURES = 10
FAILURE_WINDOW = dt.timedelta(days=7)
REFRESH_SECONDS = 60
MIN_CHART_DAYS = 7
# Worst first on the health table and the overview.
STATUS_ORDER = ("critical", "warning", "healthy", "idle", "disabled", "retired")
MIB = 1024 * 1024
CACHE_KEY = "cronjobs:dashboard:content"


def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Staff only (wrapped in admin_view in urls.py), with the view permissions of what it
    shows: executions, tasks (their health) and alerts (their messages)."""
    if not request.user.has_perms(actions.OVERVIEW_PERMISSIONS):
        raise PermissionDenied
    content = rendered_content()
    if request.GET.get("partial") == "1":
        return HttpResponse(content)
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "refresh_seconds": REFRESH_SECONDS,
        "content": content,
    }
    return TemplateResponse(request, "cronjobs/dashboard.html", context)


def rendered_content() -> SafeString:
    """The dashboard's content, from the shared cache while it is younger than
    CRONJOBS_DASHBOARD_CACHE_SECONDS (0: rendered on every request)."""
    seconds = settings.CRONJOBS_DASHBOARD_CACHE_SECONDS
    if seconds and (cached := cache.get(CACHE_KEY)) is not None:
        return mark_safe(str(cached))  # our own template, rendered above on an earlier request
    content = render_to_string("cronjobs/dashboard_content.html", build_context())
    if seconds:
        cache.set(CACHE_KEY, str(content), seconds)
    return content


def build_context(now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    tasks = list(Task.objects.filter(retired_at__isnull=True))
    trends = stats.daily_trends(TREND_DAYS, now)
    health = sorted(task_health(tasks, now, trends, with_p95=True).values(), key=health_order)
    names = {task.pk: task.name for task in tasks}
    calendar = windows.Calendar(now)
    for task in tasks:
        task.window = calendar.covering(task.name)  # type: ignore[attr-defined]  # the template
    days = _days(now)
    return {
        "now": now,
        "refresh_seconds": REFRESH_SECONDS,
        "health": health,
        "counts": status_counts(health),
        "day_totals": day_totals(trends, days),
        "open_alerts": Alert.objects.unresolved().select_related("task")[:20],
        "circuits": CircuitState.objects.tripped().select_related("task").order_by("-changed_at"),
        "recent_failures": _recent_failures(now),
        "windows_on": calendar.active(),
        "charts": _charts(now, trends, names, days),
    }


def health_order(item: TaskHealth) -> tuple[int, int, str]:
    """Worst first, then by priority and name: the order of every health table."""
    return (STATUS_ORDER.index(item.status), item.task.priority, item.task.name)


def status_counts(health: list[TaskHealth]) -> dict[str, int]:
    """How many tasks have each health word, worst first."""
    counts = dict.fromkeys(STATUS_ORDER, 0)
    for item in health:
        counts[item.status] += 1
    return counts


def _days(now: dt.datetime) -> list[dt.date]:
    today = timezone.localtime(now).date()
    return [today - dt.timedelta(days=k) for k in range(TREND_DAYS - 1, -1, -1)]


def day_totals(trends: list[stats.DailyTrend], days: list[dt.date]) -> list[stats.DailyTrend]:
    """Per date, newest first, every task's daily row added up (stats.combined: task id 0)."""
    by_day: dict[dt.date, list[stats.DailyTrend]] = {}
    for trend in trends:
        by_day.setdefault(trend.date, []).append(trend)
    return [
        stats.DailyTrend(**dataclasses.asdict(stats.combined(by_day.get(day, []))), date=day)
        for day in reversed(days)
    ]


def _recent_failures(now: dt.datetime) -> list[FailedRun]:
    # Bounded to a week so the (status, started_at) index range stays short.
    return recent_failed_runs(now - FAILURE_WINDOW, RECENT_FAILURES)


def chart_days(trends: list[stats.DailyTrend], days: list[dt.date]) -> list[dt.date]:
    """The days a trend chart spans: from the first day with runs (a young install does not
    get a month of empty axis), and never fewer than a week."""
    first = min((t.date for t in trends), default=days[-1])
    start = min(days.index(first) if first in days else 0, len(days) - MIN_CHART_DAYS)
    return days[max(start, 0) :]


METRICS = {
    "success_rate": charts.Metric(
        "Success rate per day",
        "%",
        lambda t: t.success_rate,
        range=(0, 100),  # 90 % must not look like a cliff
    ),
    "duration": charts.Metric("Average duration per day", "s", lambda t: t.avg_duration),
    "memory": charts.Metric(
        "Peak memory per day",
        "MiB",
        lambda t: None if t.max_peak_rss_bytes is None else t.max_peak_rss_bytes / MIB,
    ),
}


def _charts(
    now: dt.datetime,
    trends: list[stats.DailyTrend],
    names: dict[int, str],
    days: list[dt.date],
) -> dict[str, Any]:
    days = chart_days(trends, days)
    return {
        "runs_per_hour": charts.runs_per_hour(stats.runs_per_hour(24, now)),
        "window_days": len(days),
        "trends": [
            (key, metric, charts.small_multiples(metric, trends, names, days))
            for key, metric in METRICS.items()
        ],
    }
