"""The front page, `/admin/` (docs/admin.md, "The overview"): every current task with its health
word and why, its last and next run, open alerts and the maintenance window it is in, worst
first; the Running now panel with a Stop button per run; the full dashboard one click away. The
app list follows it, the Cron jobs app first and the domain's models (Flagged products) below it.

`ControlRoomSite` is the admin site (settings: cronjobs.apps.ControlRoomAdminConfig): the stock
site with this index and that app order. The page reads what the task list reads (one health
rule, cronjobs/reporting/health.py): a fixed handful of queries for any history, and no 30-day
figures, which are the dashboard's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from cronjobs import windows
from cronjobs.models import Task
from cronjobs.reporting import stats
from cronjobs.reporting.health import task_health
from cronjobs.views.dashboard import health_order, status_counts

# The apps of the navigation, in this order; any other app follows them alphabetically.
APP_ORDER = ("cronjobs", "flagged_products", "auth", "axes")
# The table's rows, worst first: with 10,000 tasks, rendering every row took over ten seconds
# and showed a wall of healthy ones. The counts above it still cover every task.
OVERVIEW_ROWS = 200
# What the table and the health word read of each task's last attempt (templates/admin/
# index.html): the rest of 10,000 rows is not read.
LAST_RUN_COLUMNS = ("status", "started_at", "duration")
# Within Cron jobs: what an operator opens most, first.
MODEL_ORDER = ("Task", "Execution", "Alert", "MaintenanceWindow", "ApiToken")


class ControlRoomSite(admin.AdminSite):
    site_header = "flagged-cron"
    site_title = "flagged-cron"
    index_title = "Overview"
    # "View site" leads back here: `/` redirects to the overview (flagged_cron_project/urls.py).
    site_url = "/admin/"
    # The lists get the window's width at 1440 px (the sidebar took 300 of it): navigation is
    # the overview's app list and the breadcrumbs.
    enable_nav_sidebar = False

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        context = {**overview_context(request), **(extra_context or {})}
        return super().index(request, context)

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        apps = super().get_app_list(request, app_label)
        apps.sort(key=lambda app: _rank(APP_ORDER, app["app_label"]))
        for app in apps:
            if app["app_label"] == "cronjobs":
                app["models"].sort(key=lambda model: _rank(MODEL_ORDER, model["object_name"]))
        return apps


def _rank(order: tuple[str, ...], name: str) -> tuple[int, str]:
    return (order.index(name) if name in order else len(order), name)


def overview_context(request: HttpRequest, now: dt.datetime | None = None) -> dict[str, Any]:
    """The overview's figures for this user: nothing without `view task`."""
    if not request.user.has_perm("cronjobs.view_task"):
        return {"overview": None}
    now = now or timezone.now()
    # Joined, the circuits cost task_health no query: a prefetch sends 10,000 ids.
    tasks = list(Task.objects.filter(retired_at__isnull=True).select_related("circuitstate"))
    last = stats.last_executions(columns=LAST_RUN_COLUMNS)
    by_task = task_health(tasks, now, with_month=False, last=last)
    health = sorted(by_task.values(), key=health_order)
    shown = health[:OVERVIEW_ROWS]
    calendar = windows.Calendar(now)  # one read of the windows for the whole page
    for item in shown:
        item.task.window = calendar.covering(item.task.name)  # type: ignore[attr-defined]
    return {
        "overview": {
            "now": now,
            "health": shown,
            "more": len(health) - len(shown),
            "counts": status_counts(health),
        }
    }
