"""`GET /metrics` in the Prometheus text format (docs/api.md, "Prometheus").

Every scrape reads the database: several app servers and short-lived `runjob` processes share
one database, so process-global counters would each see only a slice of the truth.

`flagged_cron_attempts_total` is a true counter read from reporting.counters (a carried-forward
tally plus the last two days' rows): counting the whole history on every scrape took about 3 s
on a million rows, and pruning old history would have made it go backwards. The 24-hour gauges
answer the usual alert questions directly (`flagged_cron_attempts_24h{status="failed"} > 0`).

The text is written here (`Family`) rather than through prometheus_client's collector and
`generate_latest`: with 10,000 tasks a scrape has about 240,000 samples, and prometheus_client
builds a labels dict per sample and validates and escapes every label name of every line, which
was most of a 4 s scrape. `Family` writes the same bytes (tests/test_prometheus.py compares
them with generate_latest's): labels sorted by name, values by prometheus_client's
floatToGoString, each task's name escaped once per scrape.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

from cronjobs import actions, history
from cronjobs.models import Alert, CircuitState, Execution, Task
from cronjobs.reporting import counters, stats
from cronjobs.views import api

PREFIX = "flagged_cron_"
WINDOW = dt.timedelta(hours=24)
COUNTED = [s for s in stats.OUTCOMES if s != Execution.Status.RUNNING]
CLOSED = CircuitState.State.CLOSED


def escape(value: str) -> str:
    """A label value as the text format wants it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def pair(name: str, value: str) -> str:
    return f'{name}="{escape(value)}"'


class Family:
    """One metric family's HELP, TYPE and sample lines. `labels` is the label text of a sample,
    `pair()`s joined by commas in the order of their names (every family's `task` comes last,
    after `kind`, `le`, `severity`, `state` and `status`)."""

    def __init__(self, name: str, documentation: str, kind: str = "gauge") -> None:
        self.name = PREFIX + name + ("_total" if kind == "counter" else "")
        doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
        self.lines = [f"# HELP {self.name} {doc}\n# TYPE {self.name} {kind}\n"]

    def add(self, labels: str, value: float, suffix: str = "") -> None:
        self.lines.append(f"{self.name}{suffix}{{{labels}}} {number(value)}\n")


def number(value: float) -> str:
    """floatToGoString's text; most samples are small counts, written without its float work
    (it switches to an exponent only from 1e6 on)."""
    if type(value) is int and -1_000_000 < value < 1_000_000:
        return f"{value}.0"
    return floatToGoString(value)  # type: ignore[no-untyped-call,no-any-return]


class Scrape:
    """The families of one scrape, read from the database."""

    def __init__(self) -> None:
        self.now = timezone.now()
        rows = Task.objects.order_by("id").values_list(
            "id", "name", "enabled", "retired_at", "circuitstate__state"
        )
        # id -> (the task's label text, enabled, retired, circuit state)
        self.tasks = {
            task_id: (pair("task", name), enabled, retired is not None, state or CLOSED)
            for task_id, name, enabled, retired, state in rows
        }

    def families(self) -> list[Family]:
        return [
            *self.task_gauges(),
            *self.last_runs(),
            *self.last_day(),
            self.attempts_total(),
            self.running(),
            self.open_alerts(),
            self.start_lag(),
        ]

    def task_gauges(self) -> list[Family]:
        enabled = Family("task_enabled", "1 if the task is enabled, 0 if disabled")
        states = Family("circuit_state", "1 for the circuit's current state")
        state_pairs = [(state, pair("state", state)) for state in CircuitState.State.values]
        for task, on, retired, current in self.tasks.values():
            if retired:
                continue
            enabled.add(task, int(on))
            for state, label in state_pairs:
                states.add(f"{label},{task}", int(state == current))
        return [enabled, states]

    def last_runs(self) -> list[Family]:
        last = stats.last_execution_values(None, "status", "started_at", "duration")
        success = stats.last_execution_values(
            Execution.Status.SUCCEEDED, "started_at", "finished_at"
        )
        started = Family("last_run_timestamp_seconds", "Start of the last finished attempt")
        ok = Family("last_run_success", "1 if the last finished attempt succeeded")
        duration = Family("last_run_duration_seconds", "Duration of the last finished attempt")
        succeeded = Family("last_success_timestamp_seconds", "End of the last successful attempt")
        for task_id, (status, started_at, seconds) in last.items():
            task = self.tasks[task_id][0]
            started.add(task, started_at.timestamp())
            ok.add(task, int(status == Execution.Status.SUCCEEDED))
            if seconds is not None:
                duration.add(task, seconds)
        for task_id, (started_at, finished_at) in success.items():
            succeeded.add(self.tasks[task_id][0], (finished_at or started_at).timestamp())
        return [started, ok, duration, succeeded]

    def last_day(self) -> list[Family]:
        day = stats.task_summaries(self.now - WINDOW, self.now)
        attempts = Family("attempts_24h", "Attempts and skips that started in the last 24 hours")
        rate = Family(
            "success_percent_24h", "Percent of finished attempts that succeeded, last 24 hours"
        )
        p95 = Family("duration_p95_seconds_24h", "95th percentile attempt duration, last 24 hours")
        status_pairs = [(status, pair("status", status)) for status in COUNTED]
        for task_id, (task, _, retired, _) in self.tasks.items():
            summary = day.get(task_id) or stats.TaskSummary(task_id)
            if retired and task_id not in day:
                continue
            for status, label in status_pairs:
                attempts.add(f"{label},{task}", getattr(summary, status))
            if summary.success_rate is not None:
                rate.add(task, summary.success_rate)
            if summary.p95_duration is not None:
                p95.add(task, summary.p95_duration)
        return [attempts, rate, p95]

    def attempts_total(self) -> Family:
        counter = Family("attempts", "Attempts and skips ever recorded", kind="counter")
        history.advance_tally(self.now)  # the mark moves on the hour: most scrapes write nothing
        counts = counters.counts(self.now)
        status_pairs = [(status, pair("status", status)) for status in COUNTED]
        for task_id, (task, _, retired, _) in self.tasks.items():
            for status, label in status_pairs:
                n = counts.get((task_id, status), 0)
                if n or not retired:  # every outcome from the start, so rate() works
                    counter.add(f"{label},{task}", n)
        return counter

    def running(self) -> Family:
        metric = Family("running", "Attempts running now")
        rows = Execution.objects.running().order_by().values_list("task_id").annotate(n=Count("id"))
        counts = dict(rows)
        for task_id, (task, _, retired, _) in self.tasks.items():
            if not retired:
                metric.add(task, counts.get(task_id, 0))
        return metric

    def open_alerts(self) -> Family:
        metric = Family("open_alerts", "Open or acknowledged alerts")
        rows = (
            Alert.objects.unresolved()
            .order_by()
            .values_list("task__name", "kind", "severity")
            .annotate(n=Count("id"))
        )
        for name, kind, severity, n in rows:
            metric.add(f"{pair('kind', kind)},{pair('severity', severity)},{pair('task', name)}", n)
        return metric

    def start_lag(self) -> Family:
        """A histogram over the last 24 hours, like the other `_24h` figures: read it with
        histogram_quantile() as it is, not through rate() (it is not a counter)."""
        metric = Family(
            "start_lag_seconds_24h",
            "Seconds from a run's slot to its first attempt's start (jitter left out), runs "
            "for a slot (cron, catch-up) that started in the last 24 hours",
            kind="histogram",
        )
        bounds = [pair("le", str(bound)) for bound in stats.LAG_BUCKETS] + [pair("le", "+Inf")]
        for task_id, lags in stats.start_lags(self.now - WINDOW, self.now).items():
            task = self.tasks[task_id][0]
            for bound, n in zip(bounds, [*lags.buckets, lags.count], strict=True):
                metric.add(f"{bound},{task}", n, "_bucket")
            metric.add(task, lags.count, "_count")
            metric.add(task, round(lags.total, 3), "_sum")
        return metric


def exposition() -> bytes:
    return "".join(line for f in Scrape().families() for line in f.lines).encode()


@api.authorize(permission=actions.VIEW_EXECUTION_PERMISSION)
def metrics_view(request: HttpRequest, actor: actions.Actor) -> HttpResponse:
    api.parse_params(request, {})
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
