"""All-time attempt counts by task and status, for Prometheus counters, at the cost of a small
index range per scrape instead of a count of the whole history.

Executions that started before a moving mark (the start of the hour FREEZE ago) are added once
to OutcomeTally and the mark moves forward; the counter is that tally plus the figures since the
mark, read like every window (reporting.stats: the rollups, and the history for the current
hour).
A row's status is final long before FREEZE passes (timeouts are minutes, dead runs are
abandoned when their lease expires), so the frozen part never needs recounting, and deleting old
history (prune_history) leaves the tally, and so the counters, untouched. Several scrapers may
advance at once: the mark moves by compare-and-set, and only the scraper that moved it adds.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.utils import timezone

from cronjobs.models import Execution, OutcomeTally, TallyMark, Task
from cronjobs.reporting import rollups, stats

FREEZE = dt.timedelta(days=2)
_BEGINNING = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def counts(now: dt.datetime | None = None) -> dict[tuple[int, str], int]:
    """(task id, status) -> attempts and skips ever recorded, running ones included."""
    now = now or timezone.now()
    mark = advance(now)
    totals = {(row.task_id, row.status): row.count for row in OutcomeTally.objects.all()}
    # The two days since the mark from the rollups (stats), not by counting their rows; the
    # window runs past now so a row another host's clock started ahead of ours counts too.
    since_mark = stats.task_summaries(mark, now + dt.timedelta(days=1), with_p95=False)
    for task_id, summary in since_mark.items():
        for status in stats.OUTCOMES:
            if n := getattr(summary, status):
                totals[task_id, status] = totals.get((task_id, status), 0) + n
    return totals


def advance(now: dt.datetime) -> dt.datetime:
    """Move the mark to the start of the hour FREEZE ago if it is behind, tallying what it
    passes; returns the mark in force. On the hour, so a scrape writes nothing but once an
    hour, and the figures since the mark start with whole hours (rollups, not rows)."""
    mark = _mark()
    target = rollups.hour_start(now - FREEZE)
    if mark >= target:
        return mark
    with transaction.atomic():
        moved = TallyMark.objects.filter(pk=1, upto=mark).update(upto=target)
        if not moved:  # another scraper advanced it; its tally is committed by now
            return _mark()
        for (task_id, status), n in _count_between(mark, target).items():
            _add(task_id, status, n)
    return target


def _mark() -> dt.datetime:
    try:
        return TallyMark.objects.get_or_create(pk=1, defaults={"upto": _BEGINNING})[0].upto
    except IntegrityError:  # created by a concurrent scrape between our get and create
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


def _add(task_id: int, status: str, n: int) -> None:
    updated = OutcomeTally.objects.filter(task_id=task_id, status=status).update(
        count=F("count") + n
    )
    if not updated:
        OutcomeTally.objects.create(task_id=task_id, status=status, count=n)
