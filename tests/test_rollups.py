"""cronjobs.reporting.rollups: 30-day figures with closed days from the cache and today live."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cronjobs.reporting import rollups, stats
from tests.helpers import ago, make_execution, make_task

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def task():
    with time_machine.travel(NOW, tick=False):
        yield make_task("rolled")


def test_daily_matches_stats_and_summaries_add_up(task):
    for hours, status, seconds in (
        (1, "succeeded", 2.0),
        (30, "failed", 4.0),
        (80, "succeeded", 9.0),
    ):
        make_execution(
            task,
            status,
            ago(hours=hours),
            duration=seconds,
            peak_rss_bytes=int(seconds) * 1_000_000,
        )

    trends = rollups.daily(30)

    assert trends == stats.daily_trends(30)
    summary = rollups.summaries(trends)[task.pk]
    assert (summary.runs, summary.succeeded, summary.failed) == (3, 2, 1)
    assert summary.avg_duration == pytest.approx(5.0)
    assert summary.max_duration == 9.0 and summary.max_peak_rss_bytes == 9_000_000
    assert summary.success_rate == pytest.approx(2 / 3)


def test_closed_days_come_from_the_cache_and_today_stays_live(task):
    make_execution(task, "failed", ago(days=2))
    rollups.daily(30)
    make_execution(task, "succeeded", ago(days=2))  # older: hidden for hours
    make_execution(task, "succeeded", ago(hours=20))  # yesterday: for minutes
    make_execution(task, "succeeded", ago(minutes=1))  # today: seen at once

    with CaptureQueriesContext(connection) as today_only:
        stats.daily_trends(1)
    with CaptureQueriesContext(connection) as queries:
        summary = rollups.summaries(rollups.daily(30))[task.pk]
    assert len(queries) == len(today_only)  # the closed days came from the cache
    assert (summary.runs, summary.succeeded) == (2, 1)

    with time_machine.travel(NOW + dt.timedelta(seconds=rollups.RECENT_TTL + 1)):
        assert rollups.summaries(rollups.daily(30))[task.pk].runs == 3
    with time_machine.travel(NOW + dt.timedelta(seconds=rollups.OLDER_TTL + 1)):
        assert rollups.summaries(rollups.daily(30))[task.pk].runs == 4
        assert rollups.daily(30) == stats.daily_trends(30)
