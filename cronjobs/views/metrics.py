"""`GET /metrics` in the Prometheus text format (docs/api.md, "Prometheus").

Every scrape reads the database through a custom collector registered on a fresh registry:
several app servers and short-lived `runjob` processes share one database, so process-global
counters would each see only a slice of the truth.

`flagged_cron_attempts_total` is a true counter read from reporting.counters (a carried-forward
tally plus the last two days' rows): counting the whole history on every scrape took about 3 s
on a million rows, and pruning old history would have made it go backwards. The 24-hour gauges
answer the usual alert questions directly (`flagged_cron_attempts_24h{status="failed"} > 0`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from cronjobs import actions, history
from cronjobs.models import Alert, CircuitState, Execution, Task
from cronjobs.reporting import counters, stats
from cronjobs.views import api

PREFIX = "flagged_cron_"
WINDOW = dt.timedelta(hours=24)
COUNTED = [s for s in stats.OUTCOMES if s != Execution.Status.RUNNING]


class DatabaseCollector(Collector):
    """Per-task gauges and counters, read from the database when collected."""

    def collect(self) -> Iterator[Metric]:
        tasks = {t.id: t for t in Task.objects.select_related("circuitstate")}
        yield from self.task_gauges(tasks)
        yield from self.last_runs(tasks)
        yield from self.last_day(tasks)
        yield self.attempts_total(tasks)
        yield self.running(tasks)
        yield self.open_alerts()
        yield self.start_lag(tasks)

    def task_gauges(self, tasks: dict[int, Task]) -> Iterator[Metric]:
        enabled = gauge("task_enabled", "1 if the task is enabled, 0 if disabled", ["task"])
        states = gauge("circuit_state", "1 for the circuit's current state", ["task", "state"])
        for task in tasks.values():
            if task.is_retired:
                continue
            enabled.add_metric([task.name], int(task.enabled))
            current = task.circuit_state
            for state in CircuitState.State.values:
                states.add_metric([task.name, state], int(state == current))
        yield from (enabled, states)

    def last_runs(self, tasks: dict[int, Task]) -> Iterator[Metric]:
        last = stats.last_executions()
        success = stats.last_executions(status=Execution.Status.SUCCEEDED)
        started = gauge(
            "last_run_timestamp_seconds", "Start of the last finished attempt", ["task"]
        )
        ok = gauge("last_run_success", "1 if the last finished attempt succeeded", ["task"])
        duration = gauge(
            "last_run_duration_seconds", "Duration of the last finished attempt", ["task"]
        )
        succeeded = gauge(
            "last_success_timestamp_seconds", "End of the last successful attempt", ["task"]
        )
        for task_id, row in last.items():
            name = tasks[task_id].name
            started.add_metric([name], row.started_at.timestamp())
            ok.add_metric([name], int(row.status == Execution.Status.SUCCEEDED))
            if row.duration is not None:
                duration.add_metric([name], row.duration)
        for task_id, row in success.items():
            succeeded.add_metric(
                [tasks[task_id].name], (row.finished_at or row.started_at).timestamp()
            )
        yield from (started, ok, duration, succeeded)

    def last_day(self, tasks: dict[int, Task]) -> Iterator[Metric]:
        now = timezone.now()
        day = stats.task_summaries(now - WINDOW, now)
        attempts = gauge(
            "attempts_24h",
            "Attempts and skips that started in the last 24 hours",
            ["task", "status"],
        )
        rate = gauge(
            "success_percent_24h",
            "Percent of finished attempts that succeeded, last 24 hours",
            ["task"],
        )
        p95 = gauge(
            "duration_p95_seconds_24h", "95th percentile attempt duration, last 24 hours", ["task"]
        )
        for task_id, task in tasks.items():
            summary = day.get(task_id) or stats.TaskSummary(task_id)
            if task.is_retired and task_id not in day:
                continue
            for status in COUNTED:
                attempts.add_metric([task.name, status], getattr(summary, status))
            if summary.success_rate is not None:
                rate.add_metric([task.name], summary.success_rate)
            if summary.p95_duration is not None:
                p95.add_metric([task.name], summary.p95_duration)
        yield from (attempts, rate, p95)

    def attempts_total(self, tasks: dict[int, Task]) -> Metric:
        counter = CounterMetricFamily(
            PREFIX + "attempts", "Attempts and skips ever recorded", labels=["task", "status"]
        )
        now = timezone.now()
        history.advance_tally(now)  # the mark moves on the hour: most scrapes write nothing
        counts = counters.counts(now)
        for task_id, task in tasks.items():
            for status in COUNTED:
                n = counts.get((task_id, status), 0)
                if n or not task.is_retired:  # every outcome from the start, so rate() works
                    counter.add_metric([task.name, status], n)
        return counter

    def running(self, tasks: dict[int, Task]) -> Metric:
        metric = gauge("running", "Attempts running now", ["task"])
        rows = Execution.objects.running().order_by().values_list("task_id").annotate(n=Count("id"))
        counts = dict(rows)
        for task_id, task in tasks.items():
            if not task.is_retired:
                metric.add_metric([task.name], counts.get(task_id, 0))
        return metric

    def open_alerts(self) -> Metric:
        metric = gauge("open_alerts", "Open or acknowledged alerts", ["task", "kind", "severity"])
        rows = (
            Alert.objects.unresolved()
            .order_by()
            .values_list("task__name", "kind", "severity")
            .annotate(n=Count("id"))
        )
        for name, kind, severity, n in rows:
            metric.add_metric([name, kind, severity], n)
        return metric

    def start_lag(self, tasks: dict[int, Task]) -> Metric:
        """A histogram over the last 24 hours, like the other `_24h` figures: read it with
        histogram_quantile() as it is, not through rate() (it is not a counter)."""
        now = timezone.now()
        metric = HistogramMetricFamily(
            PREFIX + "start_lag_seconds_24h",
            "Seconds from a run's slot to its first attempt's start (jitter left out), runs "
            "for a slot (cron, catch-up) that started in the last 24 hours",
            labels=["task"],
        )
        for task_id, lags in stats.start_lags(now - WINDOW, now).items():
            bounds = [str(bound) for bound in stats.LAG_BUCKETS]
            buckets = [*zip(bounds, lags.buckets, strict=True), ("+Inf", lags.count)]
            metric.add_metric([tasks[task_id].name], buckets, round(lags.total, 3))
        return metric


def gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, labels=labels)


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)


@api.authorize(permission=actions.VIEW_EXECUTION_PERMISSION)
def metrics_view(request: HttpRequest, actor: actions.Actor) -> HttpResponse:
    api.parse_params(request, {})
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
