"""Leaderboard and badges as of closed days (flagged_products/leaderboard.py, achievements.py),
with the clock moved across the 02:00 run and a Monday; and the five jobs' success targets."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.utils import timezone

from cronjobs.models import Execution
from cronjobs.supervisor.registry import registry
from flagged_products.achievements import check_achievements
from flagged_products.leaderboard import refresh_leaderboard
from flagged_products.models import LeaderboardEntry, StaffAchievement
from tests import flagged_helpers as h

SUNDAY = datetime.date(2026, 3, 15)
MONDAY = SUNDAY + datetime.timedelta(days=1)
Period = LeaderboardEntry.Period


def at(day: datetime.date, hour: int, minute: int = 0) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(hour, minute)))


def board(period: str) -> list[tuple[str, int]]:
    rows = LeaderboardEntry.objects.filter(period=period).order_by("rank", "staff__name")
    return [(e.staff.name, e.counts) for e in rows]


def badges(code: str) -> set[str]:
    awards = StaffAchievement.objects.filter(achievement__code=code)
    return set(awards.values_list("staff__name", flat=True))


@pytest.fixture
def week():
    """Aroha counts 2 a day Monday to Saturday of the week ending SUNDAY; Ben 5 on SUNDAY and
    8 on the Monday after; Cara 1 on that Monday (the new week)."""
    shop = h.outlet()
    aroha, ben, cara = h.staff(shop, "Aroha"), h.staff(shop, "Ben"), h.staff(shop, "Cara")
    items = iter(h.products(40))
    for n in range(1, 7):
        for _ in range(2):
            h.flag(shop, next(items), SUNDAY - datetime.timedelta(days=n), by=aroha)
    for _ in range(5):
        h.flag(shop, next(items), SUNDAY, by=ben)
    for _ in range(8):
        h.flag(shop, next(items), MONDAY, by=ben)
    h.flag(shop, next(items), MONDAY, by=cara)
    return shop


@pytest.mark.django_db
def test_the_0200_run_on_a_monday_builds_the_boards_of_the_week_that_just_ended(week):
    for moment in (at(MONDAY, 1, 59), at(MONDAY, 2, 0)):
        with time_machine.travel(moment, tick=False):
            result = refresh_leaderboard()
        assert result["as_of"] == "2026-03-15"
        assert board(Period.DAILY) == [("Ben", 5)]  # Sunday's board, not Monday's empty one
        assert board(Period.WEEKLY) == [("Aroha", 12), ("Ben", 5)]  # the whole week
        assert set(LeaderboardEntry.objects.values_list("as_of", flat=True)) == {SUNDAY}
        weekly = LeaderboardEntry.objects.filter(period=Period.WEEKLY).first()
        assert weekly.period_start == SUNDAY - datetime.timedelta(days=6)


@pytest.mark.django_db
def test_the_tuesday_run_starts_the_new_week_and_a_sunday_run_sees_saturday(week):
    with time_machine.travel(at(MONDAY + datetime.timedelta(days=1), 2), tick=False):
        refresh_leaderboard()
    assert board(Period.DAILY) == [("Ben", 8), ("Cara", 1)]
    assert board(Period.WEEKLY) == [("Ben", 8), ("Cara", 1)]
    assert board(Period.MONTHLY)[0] == ("Ben", 13)

    with time_machine.travel(at(SUNDAY, 2), tick=False):
        refresh_leaderboard()
    assert board(Period.DAILY) == [("Aroha", 2)]  # Saturday


@pytest.mark.django_db
def test_the_weekly_leader_badge_is_judged_on_the_completed_week_only(week):
    # Sunday's 06:00 badge run: the week is still going on, Aroha leads it, no weekly badge.
    with time_machine.travel(at(SUNDAY, 6), tick=False):
        refresh_leaderboard()
        result = check_achievements()
    assert result["as_of"] == "2026-03-14"
    assert badges("weekly_leader") == set()
    assert badges("first_count") == {"Aroha"}  # Ben's first count is today: not closed yet

    with time_machine.travel(at(MONDAY, 6), tick=False):
        refresh_leaderboard()
        check_achievements()
    assert badges("weekly_leader") == {"Aroha"}
    assert badges("first_count") == {"Aroha", "Ben"}

    # Tuesday: Ben leads the new (partial) week; no badge for that until it is over.
    with time_machine.travel(at(MONDAY + datetime.timedelta(days=1), 6), tick=False):
        refresh_leaderboard()
        check_achievements()
    assert badges("weekly_leader") == {"Aroha"}
    assert badges("first_count") == {"Aroha", "Ben", "Cara"}


@pytest.mark.django_db
def test_flagged_as_of_names_another_date_and_a_bad_one_is_an_error(week, monkeypatch):
    monkeypatch.setenv("FLAGGED_AS_OF", "2026-03-16")
    assert refresh_leaderboard()["as_of"] == "2026-03-16"
    assert board(Period.DAILY) == [("Ben", 8), ("Cara", 1)]
    monkeypatch.setenv("FLAGGED_AS_OF", "16/03/2026")
    with pytest.raises(ValueError, match="FLAGGED_AS_OF='16/03/2026' is not a date"):
        refresh_leaderboard()


@pytest.mark.django_db(transaction=True)
def test_runjob_says_which_date_its_boards_are_for(week, manage):
    done = manage("runjob", "refresh_leaderboard", env_extra={"FLAGGED_AS_OF": "2026-03-15"})
    assert done.returncode == 0, done.stderr
    row = Execution.objects.get(task__name="refresh_leaderboard")
    assert "refresh_leaderboard: as_of=2026-03-15 entries=" in row.output
    assert set(LeaderboardEntry.objects.values_list("as_of", flat=True)) == {SUNDAY}


def test_the_five_jobs_declare_the_seed_success_targets():
    tasks = registry.load().tasks
    targets = {name: tasks[name].success_target for name in tasks if name in TARGETS}
    assert targets == TARGETS


TARGETS = {
    "generate_daily_products": 99.0,
    "refresh_store_stats": 99.0,
    "refresh_leaderboard": 99.0,
    "check_achievements": 99.0,
    "generate_ai_insights": 95.0,
}
