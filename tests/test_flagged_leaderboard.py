"""refresh_leaderboard (flagged_products/leaderboard.py): points, ranks, ties, streaks."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flagged_products.leaderboard import refresh_leaderboard
from flagged_products.models import LeaderboardEntry
from tests import flagged_helpers as h

pytestmark = pytest.mark.django_db
TODAY = datetime.date(2026, 3, 11)  # a Wednesday
Period = LeaderboardEntry.Period


def days_ago(n: int) -> datetime.date:
    return TODAY - datetime.timedelta(days=n)


def board(period: str) -> list[tuple[str, int, int]]:
    rows = LeaderboardEntry.objects.filter(period=period).order_by("rank", "staff__name")
    return [(e.staff.name, e.rank, e.points) for e in rows]


@pytest.fixture
def shop():
    return h.outlet()


def test_points_are_counts_plus_accuracy_bonus_plus_streak(shop):
    aroha = h.staff(shop, "Aroha")
    items = h.products(3)
    h.flag(shop, items[0], TODAY, by=aroha, expected=5, counted=5)  # 10 + 5
    h.flag(shop, items[1], TODAY, by=aroha, expected=5, counted=4)  # 10
    h.flag(shop, items[2], days_ago(1), by=aroha)  # 10 + 5, and a 2-day streak
    refresh_leaderboard(TODAY)
    daily = LeaderboardEntry.objects.get(period=Period.DAILY, staff=aroha)
    assert (daily.counts, daily.accurate_counts, daily.accuracy) == (2, 1, 0.5)
    assert daily.streak == 2
    assert daily.points == 10 * 2 + 5 * 1 + 2 * 2
    assert LeaderboardEntry.objects.get(period=Period.ALL_TIME, staff=aroha).points == 30 + 10 + 4


def test_equal_points_share_a_rank_and_the_next_rank_is_skipped(shop):
    ben, chloe, emma = h.staff(shop, "Ben"), h.staff(shop, "Chloe"), h.staff(shop, "Emma")
    items = h.products(5)
    h.flag(shop, items[0], TODAY, by=ben)
    h.flag(shop, items[1], TODAY, by=ben)
    h.flag(shop, items[2], TODAY, by=chloe)
    h.flag(shop, items[3], TODAY, by=emma)
    refresh_leaderboard(TODAY)
    assert board(Period.DAILY) == [("Ben", 1, 32), ("Chloe", 2, 17), ("Emma", 2, 17)]


def test_periods_cover_today_this_week_this_month_and_all_time(shop):
    aroha = h.staff(shop, "Aroha")
    items = h.products(4)
    h.flag(shop, items[0], TODAY, by=aroha, counted=0)
    h.flag(shop, items[1], days_ago(2), by=aroha, counted=0)  # Monday: this week
    h.flag(shop, items[2], days_ago(5), by=aroha, counted=0)  # last week, this month
    h.flag(shop, items[3], days_ago(40), by=aroha, counted=0)  # before this month
    refresh_leaderboard(TODAY)
    counts = dict(LeaderboardEntry.objects.values_list("period", "counts"))
    assert counts == {Period.DAILY: 1, Period.WEEKLY: 2, Period.MONTHLY: 3, Period.ALL_TIME: 4}
    starts = dict(LeaderboardEntry.objects.values_list("period", "period_start"))
    assert starts[Period.WEEKLY] == days_ago(2) and starts[Period.MONTHLY] == TODAY.replace(day=1)


def test_pending_and_skipped_flags_earn_nothing(shop):
    aroha = h.staff(shop)
    items = h.products(2)
    h.flag(shop, items[0], TODAY)
    h.flag(shop, items[1], TODAY, status="skipped")
    refresh_leaderboard(TODAY)
    assert not LeaderboardEntry.objects.filter(staff=aroha).exists()


def test_refresh_replaces_the_previous_board(shop):
    aroha = h.staff(shop, "Aroha")
    item = h.products(1)[0]
    h.flag(shop, item, TODAY, by=aroha)
    refresh_leaderboard(TODAY)
    refresh_leaderboard(TODAY)
    assert LeaderboardEntry.objects.filter(staff=aroha).count() == 4
    refresh_leaderboard(TODAY + datetime.timedelta(days=1))
    assert board(Period.DAILY) == []


def test_query_count_does_not_grow_with_counts(shop):
    def run_with(count: int) -> int:
        people = [h.staff(shop) for _ in range(3)]
        for i, item in enumerate(h.products(count)):
            h.flag(shop, item, days_ago(i % 9), by=people[i % 3])
        with CaptureQueriesContext(connection) as ctx:
            refresh_leaderboard(TODAY)
        return len(ctx.captured_queries)

    assert run_with(20) == run_with(200)
    assert LeaderboardEntry.objects.filter(period=Period.ALL_TIME).count() == 6
