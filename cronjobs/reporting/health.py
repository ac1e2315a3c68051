"""Per-task health, as the overview, the task list, the dashboard and the API show it: the last
attempt, success over 24 hours and 30 days, the circuit, unresolved alerts, and one word for
all of it (`TaskHealth.status`, the one health rule, stated in docs/admin.md).

The word agrees with the alerts: what makes a task *critical* is what raises a critical alert
(an open circuit, a failed run, an unresolved critical alert such as `late` or `abandoned`), and
what makes it a *warning* raises a warning (a success rate under the task's `success_target`,
an unresolved warning such as `slow` or `memory`). A task is never shown worse than its
worst alert for a reason that has no alert of that severity.

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
    critical_alerts: int = 0

    # Cached: a page sorts, counts and shows each of 10,000 words, and a health is read once
    # per request, never changing under it.
    @functools.cached_property
    def status(self) -> str:
        """The one health rule, first match wins:
        retired, disabled (not judged);
        critical: the circuit is not closed, the last ended attempt failed, or an unresolved
        critical alert;
        warning: an unresolved warning alert, or a 24-hour success rate under `success_target`;
        healthy: it ran; idle: it never ended an attempt."""
        if self.task.is_retired:
            return "retired"
        if not self.task.enabled:
            return "disabled"
        if self.reasons_critical:
            return "critical"
        if self.reasons_warning:
            return "warning"
        return "healthy" if self.last else "idle"

    @property
    def reasons_critical(self) -> list[str]:
        reasons = []
        if self.circuit != CircuitState.State.CLOSED:
            reasons.append(f"circuit {self.circuit.replace('_', '-')}")
        if self.last and self.last.is_failure:
            reasons.append(f"last run {self.last.status.replace('_', ' ')}")
        if self.critical_alerts:
            reasons.append(f"{self.critical_alerts} critical alert{_s(self.critical_alerts)}")
        return reasons

    @property
    def reasons_warning(self) -> list[str]:
        reasons = []
        warnings = self.open_alerts - self.critical_alerts
        if warnings:
            reasons.append(f"{warnings} warning alert{_s(warnings)}")
        rate = self.day.success_rate
        if rate is not None and rate < self.warning_rate:
            reasons.append(f"{rate:.0f}% success in 24 h, target {self.warning_rate:g}%")
        return reasons

    @property
    def reasons(self) -> str:
        """Why the word is what it is, for a title or a second line: 'circuit open, last run
        failed'; empty for a healthy task."""
        if self.status == "critical":
            return ", ".join(self.reasons_critical)
        if self.status == "warning":
            return ", ".join(self.reasons_warning)
        return ""

    @property
    def warning_rate(self) -> float:
        """A percent, as every success rate (stats.success_rate)."""
        return self.task.success_target

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
    day: dict[int, stats.TaskSummary] | None = None,
) -> dict[int, TaskHealth]:
    """Health of each task, by task id. `trends` are stats.daily_trends(MONTH_DAYS) and `last` is
    stats.last_executions() if the caller has them already. `with_month=False` leaves the
    30-day summary empty for callers that do not show it (the status word reads only the last
    day's success rate). The 24-hour p95 is read (a day of duration histograms) only
    `with_p95`; `day` is that 24-hour stats.task_summaries when the caller read it already."""
    now = now or timezone.now()
    last = last if last is not None else stats.last_executions()
    if day is None:
        day = stats.task_summaries(now - dt.timedelta(hours=24), now, with_p95=with_p95)
    month = {}
    if with_month and trends is not None:
        month = stats.add_up(trends)
    elif with_month:  # added up by the database from the day rollups: a hundred rows, not 3,000
        month = stats.task_summaries(stats.day_edges(MONTH_DAYS, now)[0], now, with_p95=False)
    # One query for every task's circuit, so Task.circuit_state reads no row per task.
    prefetch_related_objects(tasks, "circuitstate")
    alerts: dict[int, int] = {}
    critical: dict[int, int] = {}
    counted = (
        Alert.objects.unresolved()
        .order_by()
        .values("task_id", "severity")
        .annotate(n=Count("id"))
        .values_list("task_id", "severity", "n")
    )
    for task_id, severity, n in counted:
        alerts[task_id] = alerts.get(task_id, 0) + n
        if severity == Alert.Severity.CRITICAL:
            critical[task_id] = n
    return {
        task.pk: TaskHealth(
            task=task,
            last=last.get(task.pk),
            day=day.get(task.pk) or stats.TaskSummary(task.pk),
            month=month.get(task.pk) or stats.TaskSummary(task.pk),
            circuit=task.circuit_state,
            open_alerts=alerts.get(task.pk, 0),
            critical_alerts=critical.get(task.pk, 0),
        )
        for task in tasks
    }


@dataclasses.dataclass
class FailedRun:
    """One run with failed attempts: its newest failure, how many of its attempts failed, and
    whether it recovered (a later attempt of the same run, or a later run, succeeded)."""

    latest: Execution
    failed_attempts: int
    retry_succeeded: bool
    later_run_succeeded: bool

    @property
    def recovered(self) -> str:
        """'' when nothing succeeded since; else how: 'retry succeeded', 'a later run
        succeeded'."""
        if self.retry_succeeded:
            return "retry succeeded"
        return "a later run succeeded" if self.later_run_succeeded else ""


def recent_failed_runs(
    since: dt.datetime, limit: int, last_success: dict[int, Execution] | None = None
) -> list[FailedRun]:
    """The `limit` newest runs with a failed attempt started after `since`, newest first, each
    once however many of its attempts failed. Three short queries: the newest failures on the
    (status, started_at) index, which of their runs succeeded, and each task's last success
    (stats.last_executions, unless given)."""
    failures = (
        Execution.objects.failures()
        .filter(started_at__gte=since)
        .select_related("task")
        .defer("output", "traceback", "task__description")
    )
    runs: dict[str, list[Execution]] = {}
    # A run has at most a few attempts; reading a few times `limit` rows finds `limit` runs.
    for execution in failures[: limit * 5]:
        if execution.run_id in runs or len(runs) < limit:
            runs.setdefault(execution.run_id, []).append(execution)
    # A run ends at its first success: at most one row per run.
    succeeded_runs = set(
        Execution.objects.filter(run_id__in=list(runs), status=Execution.Status.SUCCEEDED)
        .order_by()
        .values_list("run_id", flat=True)[: len(runs)]
    )
    if last_success is None:
        last_success = stats.last_executions(Execution.Status.SUCCEEDED)
    result = []
    for run_id, attempts in runs.items():
        latest = attempts[0]
        success = last_success.get(latest.task_id)
        later = success is not None and success.started_at > latest.started_at
        result.append(FailedRun(latest, len(attempts), run_id in succeeded_runs, later))
    return result


def _s(n: int) -> str:
    return "" if n == 1 else "s"
