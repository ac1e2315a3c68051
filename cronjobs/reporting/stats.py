"""Aggregate history queries: the one place the API, Prometheus, the admin task list and the
dashboard get their numbers from. Window figures come from the per-hour and per-day rollups
(reporting.rollups) for the whole hours of a window before the current one, and from the
history itself for the rest (at most a partial first hour and the current hour), so a query
reads a few thousand rollup rows for a month of a hundred tasks, not the attempts.

Vocabulary, shared by every caller:

* a *run* is an attempt row (attempt >= 1), whatever its status; skips are counted apart;
* a *finished* attempt ran to an outcome, `Execution.FINISHED`: succeeded or failed, not
  running, skipped or cancelled (an operator's stop says nothing of the job's health);
* durations and memory figures are over finished attempts (failures included: a timed-out
  attempt that ran for ten minutes is exactly what an operator wants to see in the maximum; a
  cancelled one is left out, its duration says when the stop came);
* a *success rate* is `success_rate(succeeded, finished)`: a percent from 0 to 100, None when
  nothing finished. The alert, the API, /metrics, the admin and the dashboard all show it;
* each task's *last attempt* is its latest *ended* one (`Execution.objects.ended()`: no longer
  running, a stop included, since a stop is what an operator wants to see last);
* `p95_duration` is the nearest-rank 95th percentile, the smallest duration d such that at
  least 95 % of those attempts took d or less, read from the duration histogram: within 4 %,
  and exact when it is the window's smallest or largest duration.

Local hours and dates are in settings.TIME_ZONE. Bucket edges are computed here in Python with
zoneinfo (so DST days have 23 or 25 hours, correctly) and the database only compares
`started_at` (or a rollup's `start`) against them. We do not use Django's timezone-aware Trunc,
because on MySQL/MariaDB it relies on CONVERT_TZ, which returns NULL unless the server's time
zone tables were loaded (a fresh MariaDB has none).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
)
from django.utils import timezone

from cronjobs.models import Execution, Rollup, Task
from cronjobs.reporting import rollups

Status = Execution.Status
FAILURE_STATUSES: tuple[str, ...] = tuple(s.value for s in Execution.FAILURES)
OUTCOMES: tuple[str, ...] = (
    Status.SUCCEEDED,
    *FAILURE_STATUSES,
    Status.CANCELLED,
    Status.SKIPPED,
    Status.RUNNING,
)


def success_rate(succeeded: int, finished: int) -> float | None:
    """Percent (0 to 100) of the finished attempts that succeeded; None when none finished.
    The one scale of every success rate: a target, an alert, a page and a gauge compare alike."""
    return 100 * succeeded / finished if finished else None


@dataclasses.dataclass(frozen=True)
class TaskSummary:
    """One task's history within a window. Durations in seconds, memory in bytes."""

    task_id: int
    runs: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    memory_exceeded: int = 0
    abandoned: int = 0
    cancelled: int = 0  # stopped by an operator: neither a success nor a failure
    skipped: int = 0
    avg_duration: float | None = None
    p95_duration: float | None = None
    max_duration: float | None = None
    avg_peak_rss_bytes: float | None = None
    max_peak_rss_bytes: int | None = None

    @property
    def failures(self) -> int:
        return sum(getattr(self, status) for status in Execution.FAILURES)

    @property
    def finished(self) -> int:
        return sum(getattr(self, status) for status in Execution.FINISHED)

    @property
    def success_rate(self) -> float | None:
        return success_rate(self.succeeded, self.finished)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(failures=self.failures, success_rate=self.success_rate)
        return data


@dataclasses.dataclass(frozen=True)
class HourOutcomes:
    """Attempts and skips that started in one local hour, by status."""

    hour: dt.datetime  # aware, in TIME_ZONE, the start of the hour
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    memory_exceeded: int = 0
    abandoned: int = 0
    cancelled: int = 0
    skipped: int = 0
    running: int = 0


@dataclasses.dataclass(frozen=True)
class DailyTrend(TaskSummary):
    """A TaskSummary for one task and one local date (p95 is not computed per day)."""

    date: dt.date = dataclasses.field(kw_only=True)


# Rollup rows are added up by the database, per task (and per hour or day where a caller's
# buckets need it): a month of a hundred tasks is a hundred rows to Python, not thousands.
_ROLLUP_FIGURES = (
    *rollups.COUNTED,
    *rollups.SUMS,
    "duration_min",
    "duration_max",
    "memory_max",
)
_ROLLUP_TOTALS = {
    **{f"t_{name}": Sum(name) for name in (*rollups.COUNTED, *rollups.SUMS)},
    "t_duration_min": Min("duration_min"),
    "t_duration_max": Max("duration_max"),
    "t_memory_max": Max("memory_max"),
}
Number = TypeVar("Number", int, float)


class _Histograms(Aggregate):
    """The group's histograms (JSON objects) joined by commas, the separator GROUP_CONCAT uses
    on MariaDB and SQLite alike: read in the same pass as the figures, one string a task rather
    than a row an hour. MySQL-family connections raise group_concat_max_len (settings.py), so a
    month of a task's histograms is never cut short."""

    function = "GROUP_CONCAT"
    output_field = TextField()


class _Tally:
    """One task's (and bucket's) figures, added up from rollup rows and groups of history rows:
    a few thousand rollup rows for a month of a hundred tasks, never the attempts themselves."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.d_sum = 0.0
        self.d_n = self.m_sum = self.m_n = 0
        self.d_min: float | None = None
        self.d_max: float | None = None
        self.m_max: int | None = None
        self.bins: dict[int, int] = {}

    def add_group(self, group: dict[str, Any]) -> None:
        """A (task, status[, bin]) group of history rows, aggregated by the database."""
        status = group["status"]
        self.counts[status] = self.counts.get(status, 0) + group["n"]
        if status in Execution.FINISHED:
            self._add_figures(group["d_sum"], group["d_n"], group["d_min"], group["d_max"])
            self.m_sum += group["m_sum"] or 0
            self.m_n += group["m_n"]
            self.m_max = _max(self.m_max, group["m_max"])
            if group.get("bin") is not None and group["d_n"]:
                index = int(group["bin"])
                self.bins[index] = self.bins.get(index, 0) + group["d_n"]

    def add_rollups(self, row: dict[str, Any]) -> None:
        """Rollup rows added up by the database (_ROLLUP_TOTALS)."""
        for status in rollups.COUNTED:
            if row[f"t_{status}"]:
                self.counts[status] = self.counts.get(status, 0) + row[f"t_{status}"]
        self._add_figures(
            row["t_duration_sum"],
            row["t_duration_count"],
            row["t_duration_min"],
            row["t_duration_max"],
        )
        self.m_sum += row["t_memory_sum"] or 0
        self.m_n += row["t_memory_count"] or 0
        self.m_max = _max(self.m_max, row["t_memory_max"])

    def add_histogram(self, histogram: dict[str, int]) -> None:
        for key, n in histogram.items():
            self.bins[int(key)] = self.bins.get(int(key), 0) + n

    def _add_figures(self, d_sum: float | None, d_n: int | None, d_min: Any, d_max: Any) -> None:
        self.d_sum += d_sum or 0.0
        self.d_n += d_n or 0
        self.d_min = _min(self.d_min, d_min)
        self.d_max = _max(self.d_max, d_max)

    def __bool__(self) -> bool:
        return any(self.counts.values())

    def p95(self) -> float | None:
        """Nearest rank over the histogram: the bin holding the ceil(0.95 n)-th smallest
        duration, its estimate clamped to the smallest and largest duration seen."""
        total = sum(self.bins.values())
        if total <= 0:
            return None
        rank = (95 * total + 99) // 100  # integer ceil: no float rounding at the edge
        seen = 0
        for index in sorted(self.bins):
            seen += self.bins[index]
            if seen >= rank:
                estimate = rollups.bin_value(index)
                if self.d_max is not None:
                    estimate = min(estimate, self.d_max)
                return max(estimate, self.d_min) if self.d_min is not None else estimate
        return self.d_max

    def fields(self) -> dict[str, Any]:
        counts = {status: self.counts.get(status, 0) for status in OUTCOMES}
        return {
            **counts,
            "runs": sum(counts.values()) - counts[Status.SKIPPED],
            "avg_duration": self.d_sum / self.d_n if self.d_n else None,
            "max_duration": self.d_max,
            "avg_peak_rss_bytes": self.m_sum / self.m_n if self.m_n else None,
            "max_peak_rss_bytes": self.m_max,
        }


def _max(a: Number | None, b: Number | None) -> Number | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: Number | None, b: Number | None) -> Number | None:
    return b if a is None else a if b is None else min(a, b)


@dataclasses.dataclass
class _Plan:
    """Where each part of a window [since, until) is read from (rollups module docstring)."""

    raw: list[tuple[dt.datetime, dt.datetime]]  # history rows: partial hours, the open hour
    closed: tuple[dt.datetime, dt.datetime] | None = None  # whole hours before the open one
    days: tuple[dt.datetime, dt.datetime] | None = None  # whole local days within `closed`

    def rollup_parts(self) -> list[tuple[str, dt.datetime, dt.datetime]]:
        """(span, first start, end) of each run of rollup rows to read."""
        if self.closed is None:
            return []
        first, last = self.closed
        if self.days is None:
            return [(Rollup.Span.HOUR, first, last)]
        day_first, day_last = self.days
        parts = [
            (Rollup.Span.HOUR, first, day_first),
            (Rollup.Span.DAY, day_first, day_last),
            (Rollup.Span.HOUR, day_last, last),
        ]
        return [(span, lo, hi) for span, lo, hi in parts if lo < hi]


def _plan(since: dt.datetime, until: dt.datetime, use_days: bool) -> _Plan:
    first = rollups.hour_start(since)
    if first < since:
        first += dt.timedelta(hours=1)
    last = min(rollups.hour_start(until), rollups.hour_start(timezone.now()))
    if first >= last:
        return _Plan(raw=[(since, until)])
    raw = [(since, first)] if since < first else []
    if last < until:
        raw.append((last, until))
    return _Plan(raw=raw, closed=(first, last), days=_whole_days(first, last) if use_days else None)


def _whole_days(first: dt.datetime, last: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The local midnights bounding the whole days within [first, last), if there are any."""
    day = timezone.localtime(first).date()
    if rollups.day_start(day) < first:
        day += dt.timedelta(days=1)
    end = day
    while rollups.day_start(end + dt.timedelta(days=1)) <= last:
        end += dt.timedelta(days=1)
    return (rollups.day_start(day), rollups.day_start(end)) if end > day else None


def _tallies(
    since: dt.datetime,
    until: dt.datetime,
    bucket: Callable[[dt.datetime], int],
    use_days: bool = True,
    with_bins: bool = False,
    per_task: bool = True,
    task_ids: list[int] | None = None,
) -> dict[tuple[int, int], _Tally]:
    """Per (bucket, task id), the attempts and skips that started in [since, until).
    `bucket(moment)` names the bucket of a moment; buckets must be whole local hours (whole
    local days when `use_days`). A fixed number of queries, whatever the tasks and the window:
    the rollup rows, the running attempts of the closed hours, and per history piece (at
    most two) its groups and, `with_bins`, its durations. `per_task=False` leaves the rollups'
    task ids out (key 0) for callers that add all tasks up. `task_ids` limits it to those
    tasks (default: every task)."""
    plan = _plan(since, until, use_days)
    tallies: dict[tuple[int, int], _Tally] = defaultdict(_Tally)
    only = Q() if task_ids is None else Q(task_id__in=task_ids)
    if task_ids is None:
        task_ids = _task_ids() if plan.raw else []
    for lo, hi in plan.raw:
        key = bucket(lo)
        rows = Execution.objects.filter(task_id__in=task_ids, started_at__gte=lo, started_at__lt=hi)
        if with_bins:
            rows = rows.annotate(bin=rollups.duration_bin())
        groups = rows.order_by().values("task_id", "status", *(["bin"] if with_bins else []))
        for group in groups.annotate(**rollups.GROUP_AGGREGATES):
            tallies[key, group["task_id"]].add_group(group)
    histograms = ["histogram"] if with_bins else []
    for span, lo, hi in plan.rollup_parts():
        part = Rollup.objects.filter(only, span=span, start__gte=lo, start__lt=hi).order_by()
        # Group by start only where the part spans several of the caller's buckets.
        keyed = bucket(lo) != bucket(hi - dt.timedelta(seconds=1))
        if keyed and per_task:  # one row per (task, start) already: nothing to add up
            for row in _fetch(part, "task_id", "start", *_ROLLUP_FIGURES, *histograms):
                tally = tallies[bucket(row["start"]), row["task_id"]]
                tally.add_rollups(row)
                if with_bins:
                    tally.add_histogram(row["histogram"])
            continue
        by = ["task_id"] if per_task else []
        totals = {
            **_ROLLUP_TOTALS,
            **({"histograms": _Histograms("histogram")} if with_bins else {}),
        }
        for row in part.values(*by, *(["start"] if keyed else [])).annotate(**totals):
            tally = tallies[bucket(row["start"]) if keyed else bucket(lo), row.get("task_id", 0)]
            tally.add_rollups(row)
            for histogram in json.loads(f"[{row['histograms']}]") if with_bins else []:
                tally.add_histogram(histogram)
    if plan.closed is not None:
        # A handful of rows (a task runs once at a time): the status index finds them.
        running = Execution.objects.running().filter(
            only, started_at__gte=plan.closed[0], started_at__lt=plan.closed[1]
        )
        grouped = running.order_by().values_list("task_id", "started_at").annotate(Count("id"))
        for task_id, started_at, n in grouped:
            tally = tallies[bucket(started_at), task_id]
            tally.counts[Status.RUNNING] = tally.counts.get(Status.RUNNING, 0) + n
    return {key: tally for key, tally in tallies.items() if tally}


def _fetch(rows: QuerySet[Rollup], *columns: str) -> Iterator[dict[str, Any]]:
    """Rollup rows as dicts named as _ROLLUP_TOTALS names them, read through the cursor:
    Django's work per row (a converter a column) was most of the cost of a month's figures,
    thousands of rows. `start` comes back as an aware UTC datetime, `histogram` decoded."""
    sql, params = rows.values_list(*columns).query.sql_with_params()
    names = [name if name in ("task_id", "start", "histogram") else f"t_{name}" for name in columns]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            start = row["start"]
            start = start if isinstance(start, dt.datetime) else dt.datetime.fromisoformat(start)
            row["start"] = start.replace(tzinfo=dt.UTC)
            if "histogram" in row:
                row["histogram"] = json.loads(row["histogram"])
            yield row


def task_summaries(
    since: dt.datetime,
    until: dt.datetime | None = None,
    with_p95: bool = True,
    task_ids: list[int] | None = None,
) -> dict[int, TaskSummary]:
    """Per task id, the history of attempts that started in [since, until). Tasks without any
    row in the window are absent; use TaskSummary(task_id) for them. `with_p95=False` leaves
    p95_duration empty and spares reading the duration histograms; `task_ids` reads only
    those tasks (the `success_rate` alert asks about one)."""
    until = until or timezone.now()
    tallies = _tallies(since, until, lambda _: 0, with_bins=with_p95, task_ids=task_ids)
    return {
        task_id: TaskSummary(
            task_id, **tally.fields(), p95_duration=tally.p95() if with_p95 else None
        )
        for (_, task_id), tally in tallies.items()
    }


def _task_ids() -> list[int]:
    """Filtering on every task id turns a started_at window into one range per task on the
    covering (task, started_at, ...) index, read index-only; a bare started_at range would
    fetch each row from the table instead."""
    return list(Task.objects.order_by().values_list("id", flat=True))


def last_executions(
    status: str | None = None,
    task_ids: list[int] | None = None,
    columns: tuple[str, ...] = (),
) -> dict[int, Execution]:
    """The latest ended attempt of every task (or the latest with `status`; of `task_ids` only,
    a page of a list, when given), in one query; only `columns` read when given (Django
    builds 10,000 full rows in a third of a second), and any other column read later is a
    query of its own."""
    rows = _latest(status, task_ids)
    # The output tail and traceback are the only large columns, and no caller shows them.
    rows = rows.only("task_id", *columns) if columns else rows.defer("output", "traceback")
    return {row.task_id: row for row in rows}


def last_execution_values(status: str | None, *columns: str) -> dict[int, tuple[Any, ...]]:
    """last_executions' rows as tuples of `columns`, by task id: /metrics reads four columns
    of 10,000 rows, and building a model instance per row was four fifths of the cost."""
    return {row[0]: row[1:] for row in _latest(status).values_list("task_id", *columns)}


def _latest(status: str | None, task_ids: list[int] | None = None) -> QuerySet[Execution]:
    """The correlated subquery walks the (task, started_at) index backwards and stops at the
    first match, so it costs a few index reads per task however long the history is."""
    attempts = Execution.objects.ended().filter(task_id=OuterRef("pk"))
    if status:
        attempts = attempts.filter(status=status)
    # ORDER BY started_at alone: adding "-id" as a tie-break makes MariaDB walk the global
    # started_at index instead, scanning the whole table for a task that never finished.
    latest = attempts.order_by("-started_at").values("id")[:1]
    ids = Task.objects.annotate(last_id=Subquery(latest)).filter(last_id__isnull=False)
    if task_ids is not None:
        ids = ids.filter(pk__in=task_ids)
    return Execution.objects.filter(id__in=ids.values("last_id")).order_by()


def hour_edges(hours: int, now: dt.datetime | None = None) -> list[dt.datetime]:
    """hours + 1 edges: the start of the local hour `hours - 1` hours ago ... the next hour.
    Stepping in absolute time keeps every bucket 3600 s long across DST changes."""
    local = timezone.localtime(now or timezone.now())
    current = local.replace(minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    return [current + dt.timedelta(hours=k) for k in range(1 - hours, 2)]


def day_edges(days: int, now: dt.datetime | None = None) -> list[dt.datetime]:
    """days + 1 edges: local midnights from `days - 1` days ago to tomorrow."""
    zone = timezone.get_current_timezone()
    today = timezone.localtime(now or timezone.now()).date()
    dates = [today + dt.timedelta(days=k) for k in range(1 - days, 2)]
    return [dt.datetime.combine(day, dt.time(), tzinfo=zone) for day in dates]


def _edge_bucket(edges: list[dt.datetime]) -> Callable[[dt.datetime], int]:
    """The index i with edges[i] <= moment < edges[i + 1]."""
    return lambda moment: bisect.bisect_right(edges, moment) - 1


def runs_per_hour(hours: int = 24, now: dt.datetime | None = None) -> list[HourOutcomes]:
    """Every local hour of the last `hours` (the current one included, oldest first), with the
    number of attempts and skips that started in it by status; empty hours are zeros."""
    edges = hour_edges(hours, now)
    tallies = _tallies(edges[0], edges[-1], _edge_bucket(edges), use_days=False, per_task=False)
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for (bucket, _), tally in tallies.items():
        for status, n in tally.counts.items():
            counts[bucket][status] = counts[bucket].get(status, 0) + n
    return [
        HourOutcomes(hour=timezone.localtime(edges[i]), **counts.get(i, {}))
        for i in range(len(edges) - 1)
    ]


def daily_trends(days: int = 30, now: dt.datetime | None = None) -> list[DailyTrend]:
    """Per task and local date of the last `days` (today included), oldest first; only the
    (task, date) pairs that have rows."""
    edges = day_edges(days, now)
    tallies = _tallies(edges[0], edges[-1], _edge_bucket(edges))
    trends = [
        DailyTrend(task_id, **tally.fields(), date=edges[bucket].date())
        for (bucket, task_id), tally in tallies.items()
    ]
    return sorted(trends, key=lambda t: (t.date, t.task_id))


def add_up(trends: list[DailyTrend]) -> dict[int, TaskSummary]:
    """Per task, daily rows added up into one TaskSummary. The dashboard's 30-day column is
    its 30 daily rows added up."""
    by_task: dict[int, list[DailyTrend]] = defaultdict(list)
    for trend in trends:
        by_task[trend.task_id].append(trend)
    return {task_id: combined(rows, task_id) for task_id, rows in by_task.items()}


def combined(rows: Sequence[TaskSummary], task_id: int = 0) -> TaskSummary:
    """Summaries added up into one (task id 0: several tasks together), so a total's success
    rate and averages are the figures' own, not re-derived. Without p95: percentiles do not
    add up."""
    counts = {name: sum(getattr(r, name) for r in rows) for name in ("runs", *OUTCOMES)}
    return TaskSummary(
        task_id=task_id,
        **counts,
        avg_duration=_weighted(rows, "avg_duration"),
        max_duration=max(
            (r.max_duration for r in rows if r.max_duration is not None), default=None
        ),
        avg_peak_rss_bytes=_weighted(rows, "avg_peak_rss_bytes"),
        max_peak_rss_bytes=max(
            (r.max_peak_rss_bytes for r in rows if r.max_peak_rss_bytes is not None), default=None
        ),
    )


def _weighted(rows: Sequence[TaskSummary], field: str) -> float | None:
    """The mean over all finished attempts, from each row's mean weighted by its finished ones."""
    pairs = [(getattr(r, field), r.finished) for r in rows if getattr(r, field) is not None]
    total = sum(weight for _, weight in pairs)
    return sum(value * weight for value, weight in pairs) / total if total else None


# Upper bounds (seconds) of the start-lag histogram's buckets: cron's own second, a slow start,
# a busy host, a host that was minutes behind.
LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclasses.dataclass
class LagHistogram:
    """Start lags (first attempt's start minus its slot, jitter left out) of one task's runs:
    cumulative counts per bucket bound, as Prometheus wants them."""

    buckets: list[int] = dataclasses.field(default_factory=lambda: [0] * len(LAG_BUCKETS))
    count: int = 0
    total: float = 0.0

    def add(self, lag: float) -> None:
        for i in range(bisect.bisect_left(LAG_BUCKETS, lag), len(LAG_BUCKETS)):
            self.buckets[i] += 1
        self.count += 1
        self.total += lag


def start_lags(since: dt.datetime, until: dt.datetime) -> dict[int, LagHistogram]:
    """Per task id, the start lags of the runs for a slot (cron or catch-up) whose first attempt
    started in [since, until). One range of the started_at index."""
    found: dict[int, LagHistogram] = defaultdict(LagHistogram)
    rows = Execution.objects.filter(
        started_at__gte=since, started_at__lt=until, attempt=1, start_lag__isnull=False
    )
    for task_id, lag in rows.order_by().values_list("task_id", "start_lag").iterator():
        if lag is not None:  # filtered out already; the type does not know
            found[task_id].add(max(lag, 0.0))
    return dict(found)
