"""The watchdog (supervisor/watchdog.py): late alerts against the schedule, travelled in time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from cronjobs.models import Alert, Task
from cronjobs.reporting import rollups
from cronjobs.supervisor.watchdog import check_late, grace_for, sweep
from tests.helpers import make_execution, make_task

pytestmark = pytest.mark.django_db
# 07:05 daily, read in UTC here; the task exists from the day before.
CREATED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SCHEDULED = datetime(2026, 11, 2, 7, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def utc(settings):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS_LATE_GRACE = 300


@pytest.fixture
def daily() -> Task:
    with time_machine.travel(CREATED, tick=False):
        task = make_task(
            "daily_products", schedule="5 7 * * *", timeout=600, max_attempts=3, retry_delay=60
        )
    Task.objects.exclude(pk=task.pk).update(enabled=False)  # only this one is watched
    return task


def test_grace_covers_every_attempt_and_delay(daily):
    assert grace_for(daily) == timedelta(seconds=3 * 600 + 2 * 60 + 300)


def test_not_late_within_the_grace(daily):
    with time_machine.travel(SCHEDULED + timedelta(minutes=30), tick=False):
        report = check_late()
    assert report["late"] == []
    assert not Alert.objects.exists()


def test_late_when_no_success_since_the_scheduled_run(daily):
    make_execution(daily, "succeeded", SCHEDULED - timedelta(days=1))  # yesterday's, not today's
    with time_machine.travel(SCHEDULED + timedelta(minutes=45), tick=False):
        report = check_late()
    assert report["late"] == ["daily_products"]
    alert = Alert.objects.get(task=daily, kind="late")
    assert alert.state == "open"
    assert "no successful run since the 2026-11-02 07:05 UTC run" in alert.message


def test_success_resolves_late(daily):
    with time_machine.travel(SCHEDULED + timedelta(minutes=45), tick=False):
        check_late()
        make_execution(daily, "succeeded", SCHEDULED + timedelta(minutes=44))
        report = check_late()
    assert report["on_time"] == ["daily_products"]
    assert Alert.objects.get(task=daily, kind="late").state == "resolved"


def test_repeated_checks_count_occurrences_not_alerts(daily):
    for minutes in (45, 50, 55):
        with time_machine.travel(SCHEDULED + timedelta(minutes=minutes), tick=False):
            check_late()
    assert Alert.objects.get(task=daily, kind="late").occurrences == 3


def test_a_task_created_after_its_last_slot_is_not_late(daily):
    Task.objects.filter(pk=daily.pk).update(created_at=SCHEDULED + timedelta(minutes=1))
    with time_machine.travel(SCHEDULED + timedelta(hours=2), tick=False):
        assert check_late()["late"] == []


def test_disabled_and_manual_tasks_are_not_watched(daily):
    Task.objects.filter(pk=daily.pk).update(enabled=False)
    with time_machine.travel(SCHEDULED + timedelta(hours=2), tick=False):
        assert check_late() == {"late": [], "on_time": []}


def test_sweep_reports_abandoned_runs_too(daily):
    with time_machine.travel(SCHEDULED + timedelta(minutes=45), tick=False):
        report = sweep()
    assert report["abandoned_runs"] == 0
    assert report["late"] == ["daily_products"]


def test_sweep_keeps_the_dashboards_closed_days_cached(daily):
    from django.core.cache import cache

    with time_machine.travel(SCHEDULED + timedelta(minutes=45), tick=False):
        sweep()
        # Yesterday alone, and the 28 days ending the day before it (see reporting/rollups.py).
        assert cache.get(rollups.cache_key(1, date(2026, 11, 1))) is not None
        assert cache.get(rollups.cache_key(28, date(2026, 10, 31))) is not None
