"""The history's write path: every write that puts an attempt into the history or adds one up.
cronjobs/reporting only reads what this module writes.

Attempts. An attempt or skip reaches a final status once (the runner finishes it, a skip is
written final, `abandon` gives up on it, a spool replay writes it). That write and its rollup
change go in one transaction: `save(row)` finishes a running row by compare-and-set, or else
locks the stored row, saves the new one and calls `replace(stored, new)`, which takes the
stored row's contribution out (if it was final already: a replayed spool line, a finish
landing after an abandon) and puts the new one in. `abandon` is the same compare-and-set on
the rows of a run whose supervisor died.

Rollups (cronjobs.models.Rollup; their shape, bins and local hours are cronjobs.reporting.rollups').
The change of one attempt is one multi-row upsert into the hour row and the day row (`add`):
every figure is added by the database under the row's lock (`n = n + 1`, a histogram bin
`+ 1`), so two hosts finishing attempts of one task at once never lose one to a
read-modify-write race. `rebuild(since)` recomputes the rows from the history, a local day at a
time; the history import (cronjobs/legacy) and `manage.py rebuild_rollups` use it. A change of
TIME_ZONE moves the local hours and days: rebuild after one.

Tallies (cronjobs.models.OutcomeTally and TallyMark, read by cronjobs.reporting.counters for the
Prometheus counter). Executions that started before a moving mark (the start of the hour FREEZE
ago) are added once to OutcomeTally and the mark moves forward (`advance_tally`, on a scrape of
/metrics and before `prune_history` deletes). A row's status is final long before FREEZE passes
(timeouts are minutes, dead runs are abandoned when their lease expires), so the frozen part
never needs recounting, and deleting old history leaves the tally untouched. Several processes
may advance at once: the mark moves by compare-and-set, and only the one that moved it adds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.utils import timezone

from cronjobs.models import DurationBaseline, Execution, OutcomeTally, Rollup, TallyMark, Task
from cronjobs.reporting.rollups import (
    COUNTED,
    GROUP_AGGREGATES,
    SUMS,
    bin_of,
    day_start,
    duration_bin,
    hour_start,
)

Status = Execution.Status
Span = Rollup.Span

FREEZE = dt.timedelta(days=2)


# Attempts -----------------------------------------------------------------------------------


def save(row: Execution) -> None:
    """Write an attempt or skip and its rollup change in one transaction (see the module
    docstring). The usual case, a runner finishing its running attempt, is a compare-and-set
    (UPDATE ... WHERE status = 'running'); otherwise the stored row is locked and read first,
    so a concurrent abandon or replay of the same row waits for this one and then sees it."""
    with transaction.atomic():
        if row.pk is not None and row.status != Status.RUNNING and _finish_running(row):
            note_duration(row)
            return
        stored = None
        if row.pk is not None:
            stored = Execution.objects.select_for_update().filter(pk=row.pk).first()
        row.save()
        replace(stored, row)
        if stored is None or stored.status == Status.RUNNING:  # not a replay of a final row
            note_duration(row)


def note_peak(row: Execution, peak: int) -> None:
    """The peak memory of a running attempt so far, on its row, so the "Running now" panel
    can show it from any host (a finished row is left as it ended)."""
    Execution.objects.filter(pk=row.pk, status=Status.RUNNING).update(peak_rss_bytes=peak)


def note_output(row: Execution, text: str, size: int) -> None:
    """A running attempt's output so far (its tail, and how many bytes in all), on its row, so
    the live view can follow it from any host (cronjobs/supervisor/liveoutput.py)."""
    Execution.objects.filter(pk=row.pk, status=Status.RUNNING).update(
        output=text, output_bytes=size
    )


def abandon(run_id: str, why: str) -> int:
    """Mark the `running` rows of a run whose supervisor died `abandoned` (error `why`), each
    with its rollup change; returns how many were still running."""
    now = timezone.now()
    count = 0
    for row in Execution.objects.running().filter(run_id=run_id):
        row.status, row.finished_at, row.error = Status.ABANDONED, now, why
        row.duration = (now - row.started_at).total_seconds()
        with transaction.atomic():  # the compare-and-set and its rollup change, or neither
            count += _finish_running(row, ("status", "finished_at", "duration", "error"))
    return count


def _finish_running(row: Execution, fields: Iterable[str] | None = None) -> bool:
    """Write `fields` of `row` (default: all) if the stored row is still running, and add it
    to its rollups; False, writing nothing, when another process finished it first. Called
    inside the caller's transaction."""
    if fields is None:
        fields = [f.attname for f in Execution._meta.concrete_fields if not f.primary_key]
    values = {name: getattr(row, name) for name in fields}
    if not Execution.objects.filter(pk=row.pk, status=Status.RUNNING).update(**values):
        return False
    add(row)
    return True


def note_duration(row: Execution) -> None:
    """Append a successful attempt's duration to its task's DurationBaseline when the task has
    `duration_alerts = "auto"`: `[execution id, seconds]`, newest last, dropping the oldest once
    `duration_baseline + 1` are kept (the attempt being judged and the baseline before it).
    Called once per attempt, when it becomes final, inside the transaction that finalises it:
    one upsert whose JSON the database appends to under the row's lock (like the rollups), so
    two hosts finishing at once lose no sample. Nothing for a task without duration alerts
    or for a failed attempt."""
    if row.status != Status.SUCCEEDED or row.duration is None or row.pk is None:
        return
    task = row.task  # the runner's row carries its Task: no query
    if task.duration_alerts != "auto":
        return
    keep = task.duration_baseline + 1
    sample = [row.pk, round(row.duration, 6)]
    table = connection.ops.quote_name(DurationBaseline._meta.db_table)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    if connection.vendor == "mysql":
        append = "JSON_ARRAY_APPEND(samples, '$', JSON_ARRAY(%s, %s))"
        sql = (
            f"INSERT INTO {table} (task_id, samples, updated_at) "
            "VALUES (%s, JSON_ARRAY(JSON_ARRAY(%s, %s)), %s) ON DUPLICATE KEY UPDATE "
            f"samples = IF(JSON_LENGTH(samples) >= %s, JSON_REMOVE({append}, '$[0]'), {append}), "
            "updated_at = VALUES(updated_at)"
        )
    else:
        append = "json_insert(samples, '$[#]', json_array(%s, %s))"
        sql = (
            f"INSERT INTO {table} (task_id, samples, updated_at) "
            "VALUES (%s, json_array(json_array(%s, %s)), %s) ON CONFLICT (task_id) DO UPDATE SET "
            f"samples = CASE WHEN json_array_length(samples) >= %s "
            f"THEN json_remove({append}, '$[0]') ELSE {append} END, "
            "updated_at = excluded.updated_at"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [row.task_id, *sample, now, keep, *sample, *sample])


# Rollups ------------------------------------------------------------------------------------


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
    if row.status in Execution.FINISHED and row.duration is not None:
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
    timed = row.status in Execution.FINISHED
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


def _fold(rollup: Rollup, group: dict[str, Any]) -> None:
    """Add one (task, hour, status, bin) group of the history to a rollup row."""
    status = group["status"]
    setattr(rollup, status, getattr(rollup, status) + group["n"])
    if status not in Execution.FINISHED:
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


# Tallies ------------------------------------------------------------------------------------


def advance_tally(now: dt.datetime) -> dt.datetime:
    """Move the mark to the start of the hour FREEZE ago if it is behind, tallying what it
    passes; returns the mark in force. On the hour, so a scrape writes nothing but once an
    hour, and the figures since the mark start with whole hours (rollups, not rows)."""
    mark = _tally_mark()
    target = hour_start(now - FREEZE)
    if mark >= target:
        return mark
    with transaction.atomic():
        moved = TallyMark.objects.filter(pk=1, upto=mark).update(upto=target)
        if not moved:  # another process advanced it; its tally is committed by now
            return _tally_mark()
        for (task_id, status), n in _count_between(mark, target).items():
            _tally(task_id, status, n)
    return target


def _tally_mark() -> dt.datetime:
    try:
        defaults = {"upto": TallyMark.BEGINNING}
        return TallyMark.objects.get_or_create(pk=1, defaults=defaults)[0].upto
    except IntegrityError:  # created by a concurrent process between our get and create
        return TallyMark.objects.get(pk=1).upto


def _count_between(start: dt.datetime, end: dt.datetime) -> dict[tuple[int, str], int]:
    """Rows started in [start, end): one range per task on the covering index."""
    rows = Execution.objects.filter(
        started_at__gte=start,
        started_at__lt=end,
        task_id__in=list(Task.objects.values_list("id", flat=True)),
    )
    grouped = rows.order_by().values_list("task_id", "status").annotate(n=Count("id"))
    return {(task_id, status): n for task_id, status, n in grouped}


def _tally(task_id: int, status: str, n: int) -> None:
    updated = OutcomeTally.objects.filter(task_id=task_id, status=status).update(
        count=F("count") + n
    )
    if not updated:
        OutcomeTally.objects.create(task_id=task_id, status=status, count=n)
