"""refresh_leaderboard: staff rankings per period, from completed counts, as of a business date.

Points for one staff member in a period (counts are grouped by the day the product was flagged):

    points = 10 per completed count
           +  5 per count that matched the expected quantity (accuracy bonus)
           +  2 per day of the current streak, at most 30 days (streak bonus)

A streak is the run of consecutive days, ending on the board's date or the day before, on which
the staff member completed at least one count. Equal points share a rank (1, 1, 3).

Boards are computed *as of* a business date D: daily is D, weekly the Monday-based week that
contains D (up to D), monthly D's month (up to D), all time everything up to D. The scheduled
run at 02:00 builds them for the day that just ended (yesterday): at that hour nobody has counted
today yet (flags are made at 07:05), so a board of "today" would always be empty, and every
Monday's weekly board too. A run later in the day may name another date (`as_of_date`: the
FLAGGED_AS_OF environment variable, docs/domain.md). Every row carries its `as_of` date. The
four periods are replaced in one transaction, so readers see the old board or the new one,
never a mix.
"""

from __future__ import annotations

import datetime
import os
from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from flagged_products.models import FlaggedProduct, LeaderboardEntry

POINTS_PER_COUNT = 10
ACCURACY_BONUS = 5
STREAK_BONUS = 2
STREAK_CAP = 30
Period = LeaderboardEntry.Period
AS_OF_VARIABLE = "FLAGGED_AS_OF"


def as_of_date(today: datetime.date | None = None) -> datetime.date:
    """The business date a run judges: FLAGGED_AS_OF (YYYY-MM-DD) when set, otherwise the
    last closed day, yesterday. A bad value is an error naming the variable, not a guess."""
    text = os.environ.get(AS_OF_VARIABLE, "").strip()
    if text:
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{AS_OF_VARIABLE}={text!r} is not a date like 2026-11-30") from None
    return (today or timezone.localdate()) - datetime.timedelta(days=1)


def period_starts(today: datetime.date) -> dict[str, datetime.date | None]:
    return {
        Period.DAILY: today,
        Period.WEEKLY: today - datetime.timedelta(days=today.weekday()),
        Period.MONTHLY: today.replace(day=1),
        Period.ALL_TIME: None,
    }


def completed_counts(start: datetime.date | None, end: datetime.date) -> dict[int, tuple[int, int]]:
    """staff id -> (completed counts, accurate counts) for flags dated start..end."""
    rows = FlaggedProduct.objects.filter(
        status=FlaggedProduct.Status.COMPLETED, completed_by__isnull=False, flag_date__lte=end
    )
    if start is not None:
        rows = rows.filter(flag_date__gte=start)
    totals = (
        rows.values("completed_by")
        .annotate(
            counts=Count("id"),
            accurate=Count("id", filter=Q(counted_quantity=F("expected_quantity"))),
        )
        .order_by()
    )
    return {row["completed_by"]: (row["counts"], row["accurate"]) for row in totals}


def count_days(since: datetime.date | None, end: datetime.date) -> dict[int, set[datetime.date]]:
    """staff id -> the days (flag dates) on which they completed at least one count."""
    rows = FlaggedProduct.objects.filter(
        status=FlaggedProduct.Status.COMPLETED, completed_by__isnull=False, flag_date__lte=end
    )
    if since is not None:
        rows = rows.filter(flag_date__gte=since)
    days: dict[int, set[datetime.date]] = defaultdict(set)
    pairs = rows.values_list("completed_by", "flag_date").distinct().order_by()
    for staff_id, day in pairs:
        days[staff_id].add(day)
    return days


def current_streak(days: set[datetime.date], today: datetime.date) -> int:
    """Consecutive days with a count, ending today (or yesterday: today is not over)."""
    day = today if today in days else today - datetime.timedelta(days=1)
    streak = 0
    while day in days:
        streak += 1
        day -= datetime.timedelta(days=1)
    return streak


def longest_streak(days: Iterable[datetime.date]) -> int:
    best = run = 0
    previous = None
    for day in sorted(days):
        run = run + 1 if previous and (day - previous).days == 1 else 1
        best = max(best, run)
        previous = day
    return best


def points(counts: int, accurate: int, streak: int) -> int:
    bonus = STREAK_BONUS * min(streak, STREAK_CAP)
    return POINTS_PER_COUNT * counts + ACCURACY_BONUS * accurate + bonus


def ranked(scores: dict[int, int]) -> list[tuple[int, int]]:
    """(staff id, rank) by points, highest first; equal points share a rank (1, 1, 3)."""
    order = sorted(scores, key=lambda staff: (-scores[staff], staff))
    ranks, previous, rank = [], None, 0
    for position, staff in enumerate(order, start=1):
        if scores[staff] != previous:
            rank, previous = position, scores[staff]
        ranks.append((staff, rank))
    return ranks


def build_entries(today: datetime.date) -> list[LeaderboardEntry]:
    """The four boards as of `today` (the board's business date)."""
    now = timezone.now()
    streak_days = count_days(today - datetime.timedelta(days=STREAK_CAP + 1), today)
    streaks = {staff: current_streak(days, today) for staff, days in streak_days.items()}
    entries = []
    for period, start in period_starts(today).items():
        totals = completed_counts(start, today)
        scores = {s: points(c, a, streaks.get(s, 0)) for s, (c, a) in totals.items()}
        for staff_id, rank in ranked(scores):
            counts, accurate = totals[staff_id]
            entries.append(
                LeaderboardEntry(
                    period=period,
                    period_start=start,
                    staff_id=staff_id,
                    rank=rank,
                    points=scores[staff_id],
                    counts=counts,
                    accurate_counts=accurate,
                    accuracy=round(accurate / counts, 4),
                    streak=streaks.get(staff_id, 0),
                    as_of=today,
                    refreshed_at=now,
                )
            )
    return entries


def refresh_leaderboard(as_of: datetime.date | None = None) -> dict[str, object]:
    """Replace the boards with those as of `as_of` (default: as_of_date(), yesterday)."""
    day = as_of or as_of_date()
    entries = build_entries(day)
    with transaction.atomic():
        LeaderboardEntry.objects.all().delete()
        LeaderboardEntry.objects.bulk_create(entries, batch_size=1000)
    return {"as_of": day.isoformat(), "entries": len(entries)}
