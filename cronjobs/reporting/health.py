"""Per-task health, as the task list and the dashboard show it (the seed's
`vw_flagged_products_cron_health`): the last attempt, success over 24 hours and 30 days, the
circuit, unresolved alerts, and one word for all of it.

A fixed handful of queries for any number of tasks and rows: the numbers come from
reporting.stats (the last 24 hours, and 30 days as daily rows read from the rollups),
the circuits and alert counts from one query each.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

from django.db.models import Count, prefetch_related_objects
from django.utils import timezone

from cronjobs import schedules
from cronjobs.models import Alert, CircuitState, Execution, Task
from cronjobs.reporting import stats

# Below its own success_target a task needs a look (warning); failing CRITICAL_FACTOR times as
# often as the target allows, it is critical. A 90 % target gives the old fixed 90 % / 50 %.
CRITICAL_FACTOR = 5
MONTH_DAYS = 30  # today and the 29 days before it


# cron-descriptor reloads its translations on every call; a page describes the same few
# expressions over and over.
_describe = functools.lru_cache(maxsize=512)(schedules.describe)


@dataclasses.dataclass
class TaskHealth:
    task: Task
    last: Execution | None
    day: stats.TaskSummary
    month: stats.TaskSummary
    circuit: str
    open_alerts: int

    @property
    def status(self) -> str:
        """retired, disabled, critical, warning, healthy or idle (never ran)."""
        if self.task.is_retired:
            return "retired"
        if not self.task.enabled:
            return "disabled"
        rate = self.day.success_rate
        if self.circuit != CircuitState.State.CLOSED or (self.last and self.last.is_failure):
            return "critical"
        if rate is not None and rate < self.critical_rate:
            return "critical"
        if self.open_alerts or (rate is not None and rate < self.warning_rate):
            return "warning"
        return "healthy" if self.last else "idle"

    @property
    def warning_rate(self) -> float:
        """A percent, as every success rate (stats.success_rate)."""
        return self.task.success_target

    @property
    def critical_rate(self) -> float:
        return max(0.0, 100 - CRITICAL_FACTOR * (100 - self.warning_rate))

    @property
    def snoozed(self) -> bool:
        return self.task.is_snoozed()

    @property
    def schedule_in_words(self) -> str:
        words = _describe(self.task.schedule)
        zone = self.task.time_zone
        return f"{words} ({zone})" if zone and self.task.schedule else words

    @property
    def next_run(self) -> dt.datetime | None:
        if not self.task.enabled or self.task.is_retired:
            return None
        return schedules.next_run(self.task.schedule, zone=self.task.time_zone)


def task_health(
    tasks: list[Task],
    now: dt.datetime | None = None,
    trends: list[stats.DailyTrend] | None = None,
    with_month: bool = True,
    last: dict[int, Execution] | None = None,
    with_p95: bool = False,
) -> dict[int, TaskHealth]:
    """Health of each task, by task id. `trends` are stats.daily_trends(MONTH_DAYS) and `last` is
    stats.last_executions() if the caller has them already. `with_month=False` leaves the
    30-day summary empty for callers that do not show it (the status word reads only the last
    day's success rate). The 24-hour p95 is read (a day of duration histograms) only
    `with_p95`: the dashboard shows it, the task list does not."""
    now = now or timezone.now()
    last = last if last is not None else stats.last_executions()
    day = stats.task_summaries(now - dt.timedelta(hours=24), now, with_p95=with_p95)
    month = {}
    if with_month and trends is not None:
        month = stats.add_up(trends)
    elif with_month:  # added up by the database from the day rollups: a hundred rows, not 3,000
        month = stats.task_summaries(stats.day_edges(MONTH_DAYS, now)[0], now, with_p95=False)
    # One query for every task's circuit, so Task.circuit_state reads no row per task.
    prefetch_related_objects(tasks, "circuitstate")
    alerts = dict(
        Alert.objects.unresolved()
        .order_by()
        .values("task_id")
        .annotate(n=Count("id"))
        .values_list("task_id", "n")
    )
    return {
        task.pk: TaskHealth(
            task=task,
            last=last.get(task.pk),
            day=day.get(task.pk) or stats.TaskSummary(task.pk),
            month=month.get(task.pk) or stats.TaskSummary(task.pk),
            circuit=task.circuit_state,
            open_alerts=alerts.get(task.pk, 0),
        )
        for task in tasks
    }
