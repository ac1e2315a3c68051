"""`GET /metrics` in the Prometheus text format (README "Prometheus metrics").

Every scrape reads the database through a custom collector registered on a fresh registry:
several app servers and short-lived `runjob` processes share one database, so process-global
counters would each see only a slice of the truth.

`flagged_cron_attempts_total` counts the attempt rows kept in the database. Pruning old history
(cronjobs/history.py) lowers it, which Prometheus treats like a counter reset.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cronjobs import api, stats
from cronjobs.models import Alert, CircuitState, Execution, Task
from cronjobs.overview import OPEN_ALERT_STATES, circuit_state

PREFIX = "flagged_cron_"


class DatabaseCollector(Collector):
    """Per-task gauges and counters, read from the database when collected."""

    def collect(self) -> Iterator[Metric]:
        tasks = {t.id: t for t in Task.objects.select_related("circuitstate")}
        yield from self.task_gauges(tasks)
        yield from self.last_runs(tasks)
        yield self.attempts(tasks)
        yield self.running(tasks)
        yield self.open_alerts()

    def task_gauges(self, tasks: dict[int, Task]) -> Iterator[Metric]:
        enabled = gauge("task_enabled", "1 if the task is enabled, 0 if disabled", ["task"])
        states = gauge("circuit_state", "1 for the circuit's current state", ["task", "state"])
        for task in tasks.values():
            if task.is_retired:
                continue
            enabled.add_metric([task.name], int(task.enabled))
            current = circuit_state(task)
            for state in CircuitState.State.values:
                states.add_metric([task.name, state], int(state == current))
        yield from (enabled, states)

    def last_runs(self, tasks: dict[int, Task]) -> Iterator[Metric]:
        last = stats.last_executions()
        success = stats.last_executions(status=Execution.Status.SUCCEEDED)
        started = gauge("last_run_timestamp_seconds", "Start of the last finished attempt",
                        ["task"])  # fmt: skip
        ok = gauge("last_run_success", "1 if the last finished attempt succeeded", ["task"])
        duration = gauge("last_run_duration_seconds", "Duration of the last finished attempt",
                         ["task"])  # fmt: skip
        succeeded = gauge("last_success_timestamp_seconds", "End of the last successful attempt",
                          ["task"])  # fmt: skip
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

    def attempts(self, tasks: dict[int, Task]) -> Metric:
        counter = CounterMetricFamily(
            PREFIX + "attempts",
            "Attempts and skips recorded, by outcome",
            labels=["task", "status"],
        )
        rows = Execution.objects.order_by().values_list("task_id", "status").annotate(n=Count("id"))
        counts = {(task_id, status): n for task_id, status, n in rows}
        # Every current task gets every outcome, 0 included, so rate() works from the start.
        for task_id, task in tasks.items():
            for status in stats.OUTCOMES:
                n = counts.get((task_id, status), 0)
                if status != Execution.Status.RUNNING and (n or not task.is_retired):
                    counter.add_metric([task.name, status], n)
        return counter

    def running(self, tasks: dict[int, Task]) -> Metric:
        metric = gauge("running", "Attempts running now", ["task"])
        rows = (
            Execution.objects.filter(status=Execution.Status.RUNNING)
            .order_by()
            .values_list("task_id")
            .annotate(n=Count("id"))
        )
        counts = dict(rows)
        for task_id, task in tasks.items():
            if not task.is_retired:
                metric.add_metric([task.name], counts.get(task_id, 0))
        return metric

    def open_alerts(self) -> Metric:
        metric = gauge("open_alerts", "Open or acknowledged alerts", ["task", "kind", "severity"])
        rows = (
            Alert.objects.filter(state__in=OPEN_ALERT_STATES)
            .order_by()
            .values_list("task__name", "kind", "severity")
            .annotate(n=Count("id"))
        )
        for name, kind, severity, n in rows:
            metric.add_metric([name, kind, severity], n)
        return metric


def gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, labels=labels)


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)


@api.authorize()
def metrics_view(request: HttpRequest) -> HttpResponse:
    api.parse_params(request, {})
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
