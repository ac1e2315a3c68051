"""Aggregate history queries: the one place the API, Prometheus, the admin task list and the
dashboard get their numbers from. Everything is computed by the database (aggregates and
index range scans); no function here loops over execution rows in Python.

Vocabulary, shared by every caller:

* a *run* is an attempt row (attempt >= 1), whatever its status; skips are counted apart;
* a *finished* attempt is a run that is no longer `running`;
* durations and memory figures are over finished attempts (failures included: a timed-out
  attempt that ran for ten minutes is exactly what an operator wants to see in the maximum);
* `success_rate` is succeeded / finished attempts, None when nothing finished;
* `p95_duration` is the nearest-rank 95th percentile: the smallest duration d such that at least
  95 % of the finished attempts took d or less.

Local hours and dates are in settings.TIME_ZONE. Bucket edges are computed here in Python with
zoneinfo (so DST days have 23 or 25 hours, correctly) and the database only compares
`started_at` against them: a nested CASE performs a binary search over the edges. We do not use
Django's timezone-aware Trunc, because on MySQL/MariaDB it relies on CONVERT_TZ, which returns
NULL unless the server's time zone tables were loaded (a fresh MariaDB has none), and the
comparison form also keeps the range condition on the indexed `started_at` column.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any, TypeVar, cast

from django.db import connection
from django.db.models import (
    Case,
    Count,
    Expression,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.utils import timezone

from cronjobs.models import Execution, Task

Status = Execution.Status
FAILURE_STATUSES: tuple[str, ...] = tuple(s.value for s in Execution.FAILURES)
OUTCOMES: tuple[str, ...] = (
    Status.SUCCEEDED,
    *FAILURE_STATUSES,
    Status.CANCELLED,
    Status.SKIPPED,
    Status.RUNNING,
)

_RUNS = Q(attempt__gte=1)
_FINISHED = _RUNS & ~Q(status=Status.RUNNING)


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
        return self.failed + self.timed_out + self.memory_exceeded + self.abandoned

    @property
    def finished(self) -> int:
        return self.succeeded + self.failures

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.finished if self.finished else None

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


# Per (task, status) group; a summary folds a task's groups together. Grouping by status keeps
# the per-row work to a few plain aggregates: fourteen filtered COUNT(CASE ...) columns made the
# database evaluate every condition on every row, five times slower on a month of history.
_GROUP_AGGREGATES = {
    "n": Count("id"),
    "d_sum": Sum("duration"),
    "d_n": Count("duration"),
    "d_max": Max("duration"),
    "m_sum": Sum("peak_rss_bytes"),
    "m_n": Count("peak_rss_bytes"),
    "m_max": Max("peak_rss_bytes"),
}
# Durations and memory describe attempts that ran to an outcome: not a running or skipped row,
# nor one an operator stopped (its duration is when the stop came, not what the job takes).
_UNFINISHED = (Status.RUNNING, Status.SKIPPED, Status.CANCELLED)
Number = TypeVar("Number", int, float)


class _GroupSum:
    """Adds up the status groups of one task (and bucket); a few dozen groups, never rows."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.d_sum = self.d_n = self.m_sum = self.m_n = 0
        self.d_max: float | None = None
        self.m_max: int | None = None

    def add(self, group: dict[str, Any]) -> None:
        status = group["status"]
        self.counts[status] = self.counts.get(status, 0) + group["n"]
        if status in _UNFINISHED:
            return
        self.d_sum += group["d_sum"] or 0
        self.d_n += group["d_n"]
        self.m_sum += group["m_sum"] or 0
        self.m_n += group["m_n"]
        self.d_max = _max(self.d_max, group["d_max"])
        self.m_max = _max(self.m_max, group["m_max"])

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


def _group_sums(groups: Iterable[dict[str, Any]], *key: str) -> dict[tuple[Any, ...], _GroupSum]:
    sums: dict[tuple[Any, ...], _GroupSum] = {}
    for group in groups:
        sums.setdefault(tuple(group[k] for k in key), _GroupSum()).add(group)
    return sums


def _window(since: dt.datetime, until: dt.datetime | None) -> Q:
    """Half-open [since, until): a row exactly at `until` belongs to the next window."""
    return Q(started_at__gte=since, started_at__lt=until or timezone.now())


def task_summaries(
    since: dt.datetime, until: dt.datetime | None = None, with_p95: bool = True
) -> dict[int, TaskSummary]:
    """Per task id, the history of attempts that started in [since, until). Tasks without any
    row in the window are absent; use TaskSummary(task_id) for them. `with_p95=False` leaves
    p95_duration empty and spares its per-task ranked reads."""
    window = _window(since, until)
    groups = (
        Execution.objects.filter(window, task_id__in=_task_ids())
        .order_by()
        .values("task_id", "status")
        .annotate(**_GROUP_AGGREGATES)
    )
    sums = {key[0]: group_sum for key, group_sum in _group_sums(groups, "task_id").items()}
    timed = {task_id: group_sum.d_n for task_id, group_sum in sums.items()} if with_p95 else {}
    p95 = p95_durations(window, timed)
    return {
        task_id: TaskSummary(task_id, **group_sum.fields(), p95_duration=p95.get(task_id))
        for task_id, group_sum in sums.items()
    }


def _task_ids() -> list[int]:
    """Filtering on every task id turns a started_at window into one range per task on the
    covering (task, started_at, ...) index, read index-only; a bare started_at range would
    fetch each row from the table instead."""
    return list(Task.objects.order_by().values_list("id", flat=True))


def p95_durations(window: Q, timed: dict[int, int]) -> dict[int, float]:
    """Nearest-rank 95th percentile of finished attempts' durations per task, given how many
    such attempts (with a duration) each task has in the window.

    The k-th smallest of n, k = ceil(0.95 n), is the (n - k + 1)-th largest, so each task's
    query reads its window range on the covering index and asks for ORDER BY duration DESC
    LIMIT 1 OFFSET n - k: the database keeps a heap of the top 5 % instead of sorting every
    row, and no row reaches Python. MySQL runs all tasks as one UNION ALL statement; SQLite
    (no LIMIT inside compound statements) one query per task."""
    timed_rows = Execution.objects.filter(window, _FINISHED, duration__isnull=False).exclude(
        status=Status.CANCELLED
    )
    ranked = cast(  # no NULL duration: filtered out above
        "QuerySet[Execution, tuple[int, float]]",
        timed_rows.order_by("-duration").values_list("task_id", "duration"),
    )
    # The shared part is built once: per task only the task filter and the slice are added
    # (building the whole filter per task was most of the endpoint's Python time).
    queries = []
    for task_id, n in timed.items():
        if n:
            offset = n - (95 * n + 99) // 100  # integer ceil: no float rounding at the edge
            queries.append(ranked.filter(task_id=task_id)[offset : offset + 1])
    if len(queries) > 1 and connection.features.supports_slicing_ordering_in_compound:
        return dict(queries[0].union(*queries[1:], all=True))
    return dict(row for query in queries for row in query)


def last_executions(status: str | None = None) -> dict[int, Execution]:
    """The latest finished attempt of every task (or the latest with `status`), in one query.
    The correlated subquery walks the (task, started_at) index backwards and stops at the first
    match, so it costs a few index reads per task however long the history is."""
    attempts = Execution.objects.filter(_FINISHED, task_id=OuterRef("pk"))
    if status:
        attempts = attempts.filter(status=status)
    # ORDER BY started_at alone: adding "-id" as a tie-break makes MariaDB walk the global
    # started_at index instead, scanning the whole table for a task that never finished.
    latest = attempts.order_by("-started_at").values("id")[:1]
    ids = Task.objects.annotate(last_id=Subquery(latest)).filter(last_id__isnull=False)
    rows = Execution.objects.filter(id__in=ids.values("last_id")).order_by()
    return {row.task_id: row for row in rows}


def _bucket(edges: list[dt.datetime], lo: int, hi: int) -> Expression:
    """The index i with edges[i] <= started_at < edges[i + 1], for rows already filtered to
    [edges[lo], edges[hi]): a binary search as nested CASEs, log2(buckets) comparisons a row."""
    if hi - lo == 1:
        return Value(lo)
    mid = (lo + hi) // 2
    return Case(
        When(started_at__lt=edges[mid], then=_bucket(edges, lo, mid)),
        default=_bucket(edges, mid, hi),
        output_field=IntegerField(),
    )


def _bucketed(edges: list[dt.datetime], *group_by: str) -> QuerySet[Execution, dict[str, Any]]:
    buckets = len(edges) - 1
    return (
        Execution.objects.filter(
            started_at__gte=edges[0], started_at__lt=edges[-1], task_id__in=_task_ids()
        )
        .order_by()
        .annotate(bucket=_bucket(edges, 0, buckets))
        .values("bucket", *group_by)
    )


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


def runs_per_hour(hours: int = 24, now: dt.datetime | None = None) -> list[HourOutcomes]:
    """Every local hour of the last `hours` (the current one included, oldest first), with the
    number of attempts and skips that started in it by status; empty hours are zeros."""
    edges = hour_edges(hours, now)
    counts: dict[int, dict[str, int]] = {}
    for row in _bucketed(edges, "status").annotate(n=Count("id")):
        counts.setdefault(row["bucket"], {})[row["status"]] = row["n"]
    return [
        HourOutcomes(hour=timezone.localtime(edges[i]), **counts.get(i, {}))
        for i in range(len(edges) - 1)
    ]


def daily_trends(days: int = 30, now: dt.datetime | None = None) -> list[DailyTrend]:
    """Per task and local date of the last `days` (today included), oldest first; only the
    (task, date) pairs that have rows."""
    edges = day_edges(days, now)
    groups = _bucketed(edges, "task_id", "status").annotate(**_GROUP_AGGREGATES)
    trends = [
        DailyTrend(task_id, **group_sum.fields(), date=edges[bucket].date())
        for (bucket, task_id), group_sum in _group_sums(groups, "bucket", "task_id").items()
    ]
    return sorted(trends, key=lambda t: (t.date, t.task_id))
