"""The shape of the per-hour and per-day rollups (cronjobs.models.Rollup), read by every window
query in reporting.stats and written by cronjobs.history: which local hour and day an attempt
falls in, the statuses and sums a rollup holds, the duration histogram's bins, and the grouping
of history rows that both a window's unrolled part and a rebuild add up. Pure helpers: nothing
here writes.

Reading. `stats` splits a window [since, until) into: whole local days before the current
hour (day rows), other whole hours before it (hour rows), and the rest, at most the partial
first hour and the current hour, from the history itself. Running attempts are not in the
rollups (they have no outcome yet), so stats counts them from the history's status index.

Durations go into log-spaced bins BIN_RATIO wide; a bin's estimate is its geometric middle,
within sqrt(BIN_RATIO) - 1 = 3.9 % of any duration in it, and stats clamps it to the window's
minimum and maximum (so a task whose runs all take 2.0 s has a p95 of exactly 2.0 s).

A change of TIME_ZONE moves the local hours and days: `manage.py rebuild_rollups` after one.
"""

from __future__ import annotations

import datetime as dt
import math

from django.db.models import Case, Count, F, FloatField, Max, Min, Sum, Value, When
from django.db.models.functions import Floor, Ln
from django.utils import timezone

from cronjobs.models import Execution

Status = Execution.Status

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
