"""flagged_products/jobs.py: the five jobs are declared with the old system's schedules and run
under the supervisor in a real `manage.py runjob` child process."""

from __future__ import annotations

import pytest

from cronjobs.models import Execution
from cronjobs.supervisor.registry import registry
from flagged_products.models import FlaggedProduct, LeaderboardEntry, StoreStats

EXPECTED = {  # name: (schedule, timeout, priority), docs/domain.md
    "generate_daily_products": ("5 7 * * *", 600, 1),
    "refresh_store_stats": ("*/30 * * * *", 180, 2),
    "refresh_leaderboard": ("0 2 * * *", 300, 3),
    "check_achievements": ("0 */6 * * *", 300, 3),
    "generate_ai_insights": ("0 * * * *", 600, 4),
}


def test_the_five_jobs_have_the_seed_schedules_timeouts_and_priorities():
    tasks = registry.load().tasks
    for name, expected in EXPECTED.items():
        spec = tasks[name]
        assert (spec.schedule, spec.timeout, spec.priority) == expected, name
        assert spec.kind == "callable" and spec.max_attempts == 3


def test_badges_follow_the_leaderboard_and_a_missed_daily_list_is_caught_up():
    tasks = registry.load().tasks
    assert tasks["check_achievements"].after == ("refresh_leaderboard",)
    assert [spec.name for spec in registry.downstream("refresh_leaderboard")] == [
        "check_achievements"
    ]
    assert [name for name, spec in tasks.items() if spec.catch_up] == ["generate_daily_products"]


@pytest.mark.django_db(transaction=True)
def test_runjob_runs_the_jobs_on_seeded_data_and_prints_a_summary(manage):
    seeded = manage(
        "seed_demo", "--outlets", "2", "--products", "200", "--staff", "4", "--days", "14"
    )
    assert seeded.returncode == 0, seeded.stderr
    for name in ("generate_daily_products", "refresh_store_stats", "refresh_leaderboard"):
        done = manage("runjob", name)
        assert done.returncode == 0, done.stderr
    row = Execution.objects.filter(task__name="generate_daily_products").get()
    assert row.status == "succeeded"
    assert "generate_daily_products: outlets=2 flagged=40 seconds=" in row.output
    assert "queries=" not in row.output  # counted by the benchmark's app only
    assert FlaggedProduct.objects.filter(status="pending").count() >= 40
    assert StoreStats.objects.count() == 2
    assert LeaderboardEntry.objects.filter(period="all_time", rank=1).exists()
