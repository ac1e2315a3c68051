"""Per-hour and per-day rollups of the history (cronjobs.models.Rollup): kept up to date as
each attempt is finalised, read by every window query in reporting.stats.

Writing. An attempt or skip reaches a final status once (the runner finishes it, a skip is
written final, the watchdog abandons it, a spool replay writes it). That write and the rollup
change go in one transaction: `save(row)` finishes a running row by compare-and-set, or else
locks the stored row, saves the new one and calls `replace(stored, new)`, which takes the
stored row's contribution out (if it was final already: a replayed spool line, a finish
landing after an abandon) and puts the new one in. The change
itself is one multi-row upsert into the hour row and the day row (`add`): every figure is added
by the database under the row's lock (`n = n + 1`, a histogram bin `+ 1`), so two hosts
finishing attempts of one task at once never lose one to a read-modify-write race.

Reading. `stats` splits a window [since, until) into: whole local days before the current
hour (day rows), other whole hours before it (hour rows), and the rest, at most the partial
first hour and the current hour, from the history itself. Running attempts are not in the
rollups (they have no outcome yet), so stats counts them from the history's status index.

Durations go into log-spaced bins BIN_RATIO wide; a bin's estimate is its geometric middle,
within sqrt(BIN_RATIO) - 1 = 3.9 % of any duration in it, and stats clamps it to the window's
minimum and maximum (so a task whose runs all take 2.0 s has a p95 of exactly 2.0 s).

`rebuild(since)` recomputes the rows from the history, a local day at a time; the history
import (cronjobs/legacy) and `manage.py rebuild_rollups` use it. A change of TIME_ZONE moves
the local hours and days: rebuild after one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, Count, F, FloatField, Max, Min, Q, Sum, Value, When
from django.db.models.functions import Floor, Ln
from django.utils import timezone

from cronjobs.models import Execution, Rollup, Task

Status = Execution.Status
Span = Rollup.Span

BIN_RATIO = 1.08
BIN_BASE = 0.001  # seconds: bin 1 starts at a millisecond; shorter durations are bin 0
_LOG_RATIO = math.log(BIN_RATIO)

# The statuses a rollup counts, each its own column; `running` is never in a rollup.
COUNTED = (
    Status.SUCCEEDED,
    Status.FAILED,
    Status.TIMED_OUT,
    Status.MEMORY_EXCEEDED,
    Status.ABANDONED,
    Status.CANCELLED,
    Status.SKIPPED,
)
# Durations and memory describe finished attempts, those that ran to an outcome.
TIMED = Execution.FINISHED
SUMS = ("duration_sum", "duration_count", "memory_sum", "memory_count")


def bin_of(duration: float) -> int:
    """The histogram bin of a duration in seconds: bin k >= 1 holds [BASE r^(k-1), BASE r^k).
    (No negative bins: MariaDB's JSON paths reject a key such as "-1".)"""
    if duration < BIN_BASE:
        return 0
    return math.floor(math.log(duration / BIN_BASE) / _LOG_RATIO) + 1


def bin_value(index: int) -> float:
    """A bin's estimate: its geometric middle (half a millisecond for bin 0)."""
    if index < 1:
        return BIN_BASE / 2
    return float(BIN_BASE * BIN_RATIO ** (index - 0.5))


def hour_start(moment: dt.datetime) -> dt.datetime:
    """The UTC instant at which the local hour holding `moment` began."""
    local = timezone.localtime(moment)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def day_start(moment: dt.datetime | dt.date) -> dt.datetime:
    """The UTC instant at which the local day holding `moment` (or that date) began."""
    day = timezone.localtime(moment).date() if isinstance(moment, dt.datetime) else moment
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=timezone.get_current_timezone())
    return midnight.astimezone(dt.UTC)


# Writing ------------------------------------------------------------------------------------


def save(row: Execution) -> None:
    """Write an attempt or skip and its rollup change in one transaction (see the module
    docstring). The usual case, a runner finishing its running attempt, is a compare-and-set
    (UPDATE ... WHERE status = 'running'); otherwise the stored row is locked and read first,
    so a concurrent abandon or replay of the same row waits for this one and then sees it."""
    with transaction.atomic():
        if row.pk is not None and row.status != Status.RUNNING and _finish_running(row):
            add(row)
            return
        stored = None
        if row.pk is not None:
            stored = Execution.objects.select_for_update().filter(pk=row.pk).first()
        row.save()
        replace(stored, row)


def _finish_running(row: Execution) -> bool:
    fields = [f for f in Execution._meta.concrete_fields if not f.primary_key]
    values = {f.attname: getattr(row, f.attname) for f in fields}
    return bool(Execution.objects.filter(pk=row.pk, status=Status.RUNNING).update(**values))


def replace(stored: Execution | None, row: Execution) -> None:
    """Account for `row` being written over `stored` (its previous state, or None)."""
    if stored is not None and stored.status != Status.RUNNING:
        add(stored, sign=-1)
    if row.status != Status.RUNNING:
        add(row)


def add(row: Execution, sign: int = 1) -> None:
    """Add a final attempt or skip to its hour and day rows (sign=-1 takes it out; the minimum
    and maximum cannot be taken out and stay as they were)."""
    figures = _figures(row, sign)
    columns = ["task_id", "span", "start", *figures, "histogram"]
    bin_key, histogram = None, "{}"
    if row.status in TIMED and row.duration is not None:
        index = bin_of(row.duration)
        bin_key, histogram = f'$."{index}"', f'{{"{index}": {sign}}}'
    ops = connection.ops
    params: list[Any] = []
    for span, start in (
        (Span.HOUR, hour_start(row.started_at)),
        (Span.DAY, day_start(row.started_at)),
    ):
        params += [row.task_id, span, ops.adapt_datetimefield_value(start), *figures.values()]
        params.append(histogram)
    sql, extra = _upsert_sql(columns, list(figures), bin_key, sign)
    with connection.cursor() as cursor:
        cursor.execute(sql, params + extra)


def _figures(row: Execution, sign: int) -> dict[str, Any]:
    figures: dict[str, Any] = {status: sign if row.status == status else 0 for status in COUNTED}
    timed = row.status in TIMED
    duration = row.duration if timed else None
    memory = row.peak_rss_bytes if timed else None
    figures.update(
        duration_sum=sign * (duration or 0.0),
        duration_count=sign if duration is not None else 0,
        duration_min=duration if sign > 0 else None,
        duration_max=duration if sign > 0 else None,
        memory_sum=sign * (memory or 0),
        memory_count=sign if memory is not None else 0,
        memory_max=memory if sign > 0 else None,
    )
    return figures


def _upsert_sql(
    columns: list[str], figures: list[str], bin_key: str | None, sign: int
) -> tuple[str, list[Any]]:
    """INSERT two rows (hour, day), or add to them: MySQL's ON DUPLICATE KEY UPDATE or
    SQLite's ON CONFLICT DO UPDATE, with the same arithmetic."""
    mysql = connection.vendor == "mysql"
    new = "VALUES({})" if mysql else "excluded.{}"
    least, greatest = ("LEAST", "GREATEST") if mysql else ("MIN", "MAX")
    updates = []
    for name in figures:
        incoming = new.format(name)
        if name.endswith("_min") or name.endswith("_max"):
            pick = least if name.endswith("_min") else greatest
            updates.append(
                f"{name} = {pick}(COALESCE({name}, {incoming}), COALESCE({incoming}, {name}))"
            )
        else:
            updates.append(f"{name} = {name} + {incoming}")
    extra: list[Any] = []
    if bin_key:
        updates.append(
            "histogram = JSON_SET(histogram, %s, COALESCE(JSON_EXTRACT(histogram, %s), 0) + %s)"
        )
        extra = [bin_key, bin_key, sign]
    table = connection.ops.quote_name(Rollup._meta.db_table)
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {row}, {row}"
    if mysql:
        return f"{insert} ON DUPLICATE KEY UPDATE {', '.join(updates)}", extra
    conflict = "ON CONFLICT (span, start, task_id) DO UPDATE SET"
    return f"{insert} {conflict} {', '.join(updates)}", extra


# Rebuilding ---------------------------------------------------------------------------------


def rebuild(since: dt.datetime | dt.date | None = None) -> int:
    """Recompute the rollups of every local day from the one holding `since` (default: the
    oldest execution's) to today, from the executions there. Hours before the oldest execution
    keep their rollups: their history was pruned, and there is nothing to recompute them from.
    Each day is replaced in one transaction, so readers see it either before or after.
    Returns the number of rollup rows written."""
    oldest = Execution.objects.order_by("started_at").values_list("started_at", flat=True).first()
    if oldest is None:
        return 0
    day = timezone.localtime(oldest).date()
    if since is not None:
        asked = timezone.localtime(since).date() if isinstance(since, dt.datetime) else since
        day = max(day, asked)
    written = 0
    while day <= timezone.localdate():
        written += _rebuild_day(day, hour_start(oldest))
        day += dt.timedelta(days=1)
    return written


def _rebuild_day(day: dt.date, oldest_hour: dt.datetime) -> int:
    start, end = day_start(day), day_start(day + dt.timedelta(days=1))
    first = max(start, oldest_hour)
    hours = _hour_starts(first, end)
    rows: dict[tuple[int, dt.datetime], Rollup] = {}
    for group in _groups(hours):
        key = (group["task_id"], hours[group["hour"]])
        if key not in rows:
            rows[key] = Rollup(task_id=key[0], span=Span.HOUR, start=key[1])
        _fold(rows[key], group)
    with transaction.atomic():
        Rollup.objects.filter(
            Q(span=Span.DAY, start=start) | Q(span=Span.HOUR, start__gte=first, start__lt=end)
        ).delete()
        kept = Rollup.objects.filter(span=Span.HOUR, start__gte=start, start__lt=first)
        days: dict[int, Rollup] = {}
        for hour in [*kept, *rows.values()]:
            if hour.task_id not in days:
                days[hour.task_id] = Rollup(task_id=hour.task_id, span=Span.DAY, start=start)
            _merge(days[hour.task_id], hour)
        Rollup.objects.bulk_create([*rows.values(), *days.values()], batch_size=1000)
    return len(rows) + len(days)


def _hour_starts(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The local hours from `start` to `end` (a day has 23, 24 or 25), and `end`."""
    hours = [start]
    while hours[-1] < end:
        hours.append(hours[-1] + dt.timedelta(hours=1))
    return hours


def _groups(hours: list[dt.datetime]) -> Iterable[dict[str, Any]]:
    """Final attempts and skips in [hours[0], hours[-1]) by task, hour, status and bin."""
    task_ids = list(Task.objects.order_by().values_list("id", flat=True))
    hour = Case(
        *[When(started_at__lt=edge, then=Value(i)) for i, edge in enumerate(hours[1:])],
        default=Value(len(hours) - 2),
    )
    return (
        Execution.objects.filter(
            task_id__in=task_ids, started_at__gte=hours[0], started_at__lt=hours[-1]
        )
        .exclude(status=Status.RUNNING)
        .order_by()
        .annotate(hour=hour, bin=duration_bin())
        .values("task_id", "hour", "status", "bin")
        .annotate(**GROUP_AGGREGATES)
    )


# Per group of history rows (by task and status, and by whatever else a caller groups on).
# Grouping by status keeps the per-row work to a few plain aggregates: fourteen filtered
# COUNT(CASE ...) columns made the database evaluate every condition on every row.
GROUP_AGGREGATES = {
    "n": Count("id"),
    "d_sum": Sum("duration"),
    "d_n": Count("duration"),
    "d_min": Min("duration"),
    "d_max": Max("duration"),
    "m_sum": Sum("peak_rss_bytes"),
    "m_n": Count("peak_rss_bytes"),
    "m_max": Max("peak_rss_bytes"),
}


def duration_bin() -> Case:
    """bin_of(duration), computed by the database (NULL for a row without a duration)."""
    return Case(
        When(duration__isnull=True, then=Value(None)),
        When(duration__lt=BIN_BASE, then=Value(0)),
        default=Floor(Ln(F("duration") / Value(BIN_BASE)) / Value(_LOG_RATIO)) + Value(1),
        output_field=FloatField(),
    )


def _fold(rollup: Rollup, group: dict[str, Any]) -> None:
    """Add one (task, hour, status, bin) group of the history to a rollup row."""
    status = group["status"]
    setattr(rollup, status, getattr(rollup, status) + group["n"])
    if status not in TIMED:
        return
    rollup.duration_sum += group["d_sum"] or 0.0
    rollup.duration_count += group["d_n"]
    rollup.memory_sum += group["m_sum"] or 0
    rollup.memory_count += group["m_n"]
    rollup.duration_min = _pick(min, rollup.duration_min, group["d_min"])
    rollup.duration_max = _pick(max, rollup.duration_max, group["d_max"])
    rollup.memory_max = _pick(max, rollup.memory_max, group["m_max"])
    if group["bin"] is not None and group["d_n"]:
        key = str(int(group["bin"]))
        rollup.histogram[key] = rollup.histogram.get(key, 0) + group["d_n"]


def _merge(total: Rollup, part: Rollup) -> None:
    """Add an hour's rollup to its day's."""
    for name in (*COUNTED, *SUMS):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.duration_min = _pick(min, total.duration_min, part.duration_min)
    total.duration_max = _pick(max, total.duration_max, part.duration_max)
    total.memory_max = _pick(max, total.memory_max, part.memory_max)
    for key, n in part.histogram.items():
        total.histogram[key] = total.histogram.get(key, 0) + n


def _pick(choose: Any, a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else choose(a, b)
