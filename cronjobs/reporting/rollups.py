"""Thirty days of per-task daily figures, cheap enough for every page view.

On a big history the 30-day aggregates are the expensive part of the task list and the
dashboard: with a million executions over 90 days, stats.daily_trends(30) reads a third of
the table (2-3 s on MariaDB with a 128 MB buffer pool), while today's figures take a few
milliseconds. Closed days hardly change, so they are computed once and kept in Django's
cache: yesterday for RECENT_TTL (a run that started before midnight may still finish), the
days before it for OLDER_TTL; today is always live. The 30-day summary per task is added up
from the same daily rows (its p95 is not: percentiles do not add up, so pages show the p95
of the last 24 hours, which stats computes live).

A change to past days (an import of old history, cronjobs/legacy/history.py) calls forget():
the cached days are keyed by a generation that it moves on, so every day is computed afresh.
"""

from __future__ import annotations

import datetime as dt
import time

from django.core.cache import cache
from django.utils import timezone

from cronjobs.reporting import stats

RECENT_TTL = 15 * 60  # a run finishing after midnight shows in yesterday's row within this
OLDER_TTL = 6 * 3600  # the expensive part: days whose runs have all finished
GENERATION_KEY = "cronjobs:daily:generation"


def daily(days: int, now: dt.datetime | None = None) -> list[stats.DailyTrend]:
    """stats.daily_trends(days, now), with the days before today from the cache."""
    now = now or timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    # Any moment of yesterday, and of the day before, whatever daylight saving does.
    yesterday, before = midnight - dt.timedelta(hours=12), midnight - dt.timedelta(hours=36)
    parts = [
        (days - 2, before, OLDER_TTL),
        (min(days - 1, 1), yesterday, RECENT_TTL),
    ]
    trends = []
    for count, moment, ttl in parts:
        if count > 0:
            trends += _cached(count, moment, ttl)
    return [*trends, *stats.daily_trends(1, now)]


def _cached(days: int, moment: dt.datetime, ttl: int) -> list[stats.DailyTrend]:
    key = cache_key(days, moment.date())
    trends: list[stats.DailyTrend] | None = cache.get(key)
    if trends is None:
        trends = stats.daily_trends(days, moment)
        cache.set(key, trends, ttl)
    return trends


def cache_key(days: int, day: dt.date) -> str:
    """Where `days` days of figures ending on `day` are cached, in the current generation."""
    return f"cronjobs:daily:{cache.get(GENERATION_KEY, 0)}:{days}:{day.isoformat()}"


def forget() -> None:
    """Drop every cached day (past days changed); they are computed again when next read."""
    cache.set(GENERATION_KEY, time.time_ns(), None)


def summaries(trends: list[stats.DailyTrend]) -> dict[int, stats.TaskSummary]:
    """Per task, the daily rows added up into one TaskSummary (without p95)."""
    by_task: dict[int, list[stats.DailyTrend]] = {}
    for trend in trends:
        by_task.setdefault(trend.task_id, []).append(trend)
    return {task_id: _add_up(task_id, rows) for task_id, rows in by_task.items()}


def _add_up(task_id: int, rows: list[stats.DailyTrend]) -> stats.TaskSummary:
    counts = {
        name: sum(getattr(r, name) for r in rows)
        for name in (
            "runs",
            "running",
            "succeeded",
            "failed",
            "timed_out",
            "memory_exceeded",
            "abandoned",
            "cancelled",
            "skipped",
        )
    }
    return stats.TaskSummary(
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


def _weighted(rows: list[stats.DailyTrend], field: str) -> float | None:
    """The mean over all finished attempts, from each day's mean weighted by its attempts."""
    pairs = [(getattr(r, field), r.finished) for r in rows if getattr(r, field) is not None]
    total = sum(weight for _, weight in pairs)
    return sum(value * weight for value, weight in pairs) / total if total else None
