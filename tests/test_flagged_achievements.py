"""check_achievements (flagged_products/achievements.py): each badge rule, and never twice."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flagged_products.achievements import check_achievements
from flagged_products.leaderboard import refresh_leaderboard
from flagged_products.models import FlaggedProduct, StaffAchievement
from tests import flagged_helpers as h

pytestmark = pytest.mark.django_db
TODAY = datetime.date(2026, 3, 11)


def badges(person) -> set[str]:
    return set(
        StaffAchievement.objects.filter(staff=person).values_list("achievement__code", flat=True)
    )


def counts(shop, person, n: int, wrong: int = 0, days: int = 1) -> None:
    """n completed counts spread over `days` consecutive days ending today; `wrong` mismatch."""
    items = h.products(n)
    FlaggedProduct.objects.bulk_create(
        FlaggedProduct(
            outlet=shop,
            product=item,
            flag_date=TODAY - datetime.timedelta(days=i % days),
            reason="test",
            score=1,
            status="completed",
            expected_quantity=10,
            counted_quantity=9 if i < wrong else 10,
            completed_by=person,
        )
        for i, item in enumerate(items)
    )


@pytest.fixture
def shop():
    return h.outlet()


def test_a_first_count_earns_the_first_count_badge_only(shop):
    aroha, idle = h.staff(shop), h.staff(shop)
    counts(shop, aroha, 1)
    check_achievements(TODAY)
    assert badges(aroha) == {"first_count"}
    assert badges(idle) == set()


def test_one_hundred_counts_earn_the_century(shop):
    aroha, ben = h.staff(shop), h.staff(shop)
    counts(shop, aroha, 100, wrong=10)
    counts(shop, ben, 99, wrong=10)
    check_achievements(TODAY)
    assert "century" in badges(aroha)
    assert "century" not in badges(ben)


def test_seven_consecutive_days_earn_the_streak_but_six_do_not(shop):
    aroha, ben = h.staff(shop), h.staff(shop)
    counts(shop, aroha, 7, days=7)
    counts(shop, ben, 6, days=6)
    check_achievements(TODAY)
    assert "streak_7" in badges(aroha)
    assert "streak_7" not in badges(ben)


def test_sharpshooter_needs_98_percent_over_at_least_50_counts(shop):
    sharp, sloppy, new = h.staff(shop), h.staff(shop), h.staff(shop)
    counts(shop, sharp, 50, wrong=1)  # 98 %
    counts(shop, sloppy, 50, wrong=2)  # 96 %
    counts(shop, new, 49)  # 100 %, but too few
    check_achievements(TODAY)
    assert "sharpshooter" in badges(sharp)
    assert "sharpshooter" not in badges(sloppy)
    assert "sharpshooter" not in badges(new)


def test_the_weekly_leader_of_a_completed_week_earns_the_weekly_leader_badge(shop):
    leader, runner_up = h.staff(shop), h.staff(shop)
    counts(shop, leader, 3)
    counts(shop, runner_up, 2)
    refresh_leaderboard(TODAY)  # a Wednesday: the week is not over
    check_achievements(TODAY)
    assert "weekly_leader" not in badges(leader)

    sunday = TODAY + datetime.timedelta(days=4)
    refresh_leaderboard(sunday)
    check_achievements(sunday)
    assert "weekly_leader" in badges(leader)
    assert "weekly_leader" not in badges(runner_up)


def test_running_twice_never_awards_a_badge_twice(shop):
    aroha = h.staff(shop)
    counts(shop, aroha, 100, days=7)
    first = check_achievements(TODAY)
    again = check_achievements(TODAY)
    assert first["awarded"] == 4 and again["awarded"] == 0
    assert StaffAchievement.objects.filter(staff=aroha).count() == 4
    assert badges(aroha) == {"first_count", "century", "streak_7", "sharpshooter"}


def test_query_count_does_not_grow_with_counts(shop):
    def run_with(n: int) -> int:
        counts(shop, h.staff(shop), n, days=5)
        with CaptureQueriesContext(connection) as ctx:
            check_achievements(TODAY)
        return len(ctx.captured_queries)

    assert run_with(10) == run_with(100)
    assert StaffAchievement.objects.filter(achievement__code="century").count() == 1
