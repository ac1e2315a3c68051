"""check_achievements: badges earned from completed counts. A StaffAchievement row is unique
per staff member and badge, and awards are inserted with conflicts ignored, so a badge is
never awarded twice, not even by two overlapping runs.

Badges are judged on closed days only: counts up to the run's business date (yesterday, or
FLAGGED_AS_OF; see flagged_products/leaderboard.py). The weekly leader is taken from a weekly
board of a *completed* week (one built as of a Sunday, which the 02:00 Monday run builds),
never from a week still in progress. The job therefore runs after refresh_leaderboard."""

from __future__ import annotations

import datetime

from django.db import connection
from django.utils import timezone

from flagged_products.leaderboard import as_of_date, completed_counts, count_days, longest_streak
from flagged_products.models import Achievement, LeaderboardEntry, StaffAchievement

BADGES = {
    "first_count": ("First count", "Completed a first stock count"),
    "century": ("Century", "Completed 100 stock counts"),
    "streak_7": ("Seven-day streak", "Counted on 7 consecutive days"),
    "sharpshooter": ("Sharpshooter", "98 % of counts exact, over at least 50 counts"),
    "weekly_leader": ("Weekly leader", "Top of the weekly leaderboard"),
}
CENTURY = 100
STREAK_DAYS = 7
SHARP_MIN_COUNTS = 50
SHARP_ACCURACY = 0.98


def ensure_badges() -> dict[str, int]:
    """Create or update the badge definitions; code -> id."""
    rows = [Achievement(code=c, name=n, description=d) for c, (n, d) in BADGES.items()]
    # MySQL's ON DUPLICATE KEY UPDATE takes no conflict target; SQLite requires one.
    target = ["code"] if connection.features.supports_update_conflicts_with_target else None
    Achievement.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=target, update_fields=["name", "description"]
    )
    return dict(Achievement.objects.filter(code__in=BADGES).values_list("code", "id"))


def earned(today: datetime.date, held: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """(staff id, badge code) for every badge the counts so far justify."""
    wins: set[tuple[int, str]] = set()
    for staff_id, (counts, accurate) in completed_counts(None, today).items():
        if counts >= 1:
            wins.add((staff_id, "first_count"))
        if counts >= CENTURY:
            wins.add((staff_id, "century"))
        if counts >= SHARP_MIN_COUNTS and accurate / counts >= SHARP_ACCURACY:
            wins.add((staff_id, "sharpshooter"))
    streakers = {staff for staff, code in held if code == "streak_7"}
    for staff_id, days in count_days(None, today).items():
        if staff_id not in streakers and longest_streak(days) >= STREAK_DAYS:
            wins.add((staff_id, "streak_7"))
    wins.update((staff_id, "weekly_leader") for staff_id in weekly_leaders(today))
    return wins


def weekly_leaders(today: datetime.date) -> list[int]:
    """Rank 1 of the weekly board, when that board covers a whole week ending by `today`."""
    rows = LeaderboardEntry.objects.filter(
        period=LeaderboardEntry.Period.WEEKLY, rank=1, points__gt=0, as_of__lte=today
    ).values_list("staff_id", "period_start", "as_of")
    return [
        staff_id
        for staff_id, start, as_of in rows
        if start is not None and as_of == start + datetime.timedelta(days=6)
    ]


def check_achievements(today: datetime.date | None = None) -> dict[str, object]:
    """Award what the counts up to `today` (default: as_of_date(), yesterday) justify."""
    today = today or as_of_date()
    badge_ids = ensure_badges()
    held = set(StaffAchievement.objects.values_list("staff_id", "achievement__code"))
    new = sorted(earned(today, held) - held)
    now = timezone.now()
    StaffAchievement.objects.bulk_create(
        [StaffAchievement(staff_id=s, achievement_id=badge_ids[c], awarded_at=now) for s, c in new],
        ignore_conflicts=True,
        batch_size=1000,
    )
    return {"as_of": today.isoformat(), "awarded": len(new), "held": len(held) + len(new)}
