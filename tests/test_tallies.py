"""reporting.counters and the tally cronjobs.history keeps for it: all-time counts that only
ever grow, without counting the whole history on every call."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cronjobs import history
from cronjobs.models import Execution, OutcomeTally, TallyMark
from cronjobs.reporting import counters
from tests.helpers import make_execution, make_task

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def counts_at(when: dt.datetime) -> dict[tuple[int, str], int]:
    """What a scrape of /metrics does: move the tally's mark if it is due, then read."""
    with time_machine.travel(when, tick=False):
        history.advance_tally(timezone.now())
        return counters.counts()


@pytest.mark.django_db
def test_counts_old_and_recent_rows_by_status():
    task = make_task("nightly")
    make_execution(task, "succeeded", NOW - dt.timedelta(days=30))
    make_execution(task, "failed", NOW - dt.timedelta(days=10))
    make_execution(task, "succeeded", NOW - dt.timedelta(hours=1))
    make_execution(task, "skipped", NOW - dt.timedelta(minutes=5), skip_reason="overlap")

    counts = counts_at(NOW)

    assert counts == {(task.id, "succeeded"): 2, (task.id, "failed"): 1, (task.id, "skipped"): 1}
    assert TallyMark.objects.get().upto == NOW - history.FREEZE
    assert OutcomeTally.objects.get(status="succeeded").count == 1  # the recent one is live


@pytest.mark.django_db
def test_pruning_old_history_does_not_lower_the_counts():
    task = make_task("nightly")
    for days in (40, 35, 31):
        make_execution(task, "failed", NOW - dt.timedelta(days=days))
    assert counts_at(NOW)[(task.id, "failed")] == 3
    Execution.objects.filter(started_at__lt=NOW - dt.timedelta(days=30)).delete()
    make_execution(task, "failed", NOW + dt.timedelta(hours=1))
    assert counts_at(NOW + dt.timedelta(hours=2))[(task.id, "failed")] == 4


@pytest.mark.django_db
def test_each_row_is_tallied_once_as_the_mark_moves():
    task = make_task("nightly")
    for hours in range(0, 24 * 6, 6):  # four a day for six days
        make_execution(task, "succeeded", NOW - dt.timedelta(hours=hours))
    seen = [counts_at(NOW + dt.timedelta(days=d))[(task.id, "succeeded")] for d in range(5)]
    assert seen == [24] * 5
    assert OutcomeTally.objects.get().count == 24  # by now all of them are frozen


@pytest.mark.django_db
def test_a_status_change_inside_the_horizon_is_counted_once():
    task = make_task("nightly")
    row = make_execution(task, "running", NOW - dt.timedelta(hours=1))
    assert counts_at(NOW) == {(task.id, "running"): 1}
    Execution.objects.filter(pk=row.pk).update(status="succeeded")
    assert counts_at(NOW + dt.timedelta(days=3)) == {(task.id, "succeeded"): 1}


@pytest.mark.django_db
def test_a_scraper_that_loses_the_race_does_not_add_twice(monkeypatch):
    task = make_task("nightly")
    make_execution(task, "failed", NOW - dt.timedelta(days=5))
    history.advance_tally(NOW)  # scraper A moves the mark
    # Scraper B read the mark before A moved it: its compare-and-set finds nothing to move.
    reads = iter([TallyMark.BEGINNING, NOW - history.FREEZE])
    monkeypatch.setattr(history, "_tally_mark", lambda: next(reads))
    assert history.advance_tally(NOW + dt.timedelta(hours=1)) == NOW - history.FREEZE
    assert OutcomeTally.objects.get().count == 1


@pytest.mark.django_db
def test_the_mark_moves_once_an_hour_so_most_scrapes_write_nothing():
    task = make_task("nightly")
    make_execution(task, "succeeded", NOW - dt.timedelta(days=3))
    counts_at(NOW + dt.timedelta(minutes=10))
    assert TallyMark.objects.get().upto == NOW - history.FREEZE  # the start of that hour
    with CaptureQueriesContext(connection) as ctx:
        assert counts_at(NOW + dt.timedelta(minutes=50)) == {(task.id, "succeeded"): 1}
    assert not [q for q in ctx.captured_queries if q["sql"].startswith(("UPDATE", "INSERT"))]
    counts_at(NOW + dt.timedelta(minutes=70))
    assert TallyMark.objects.get().upto == NOW - history.FREEZE + dt.timedelta(hours=1)


@pytest.mark.django_db
def test_reading_the_counts_writes_nothing_even_before_the_tally_starts():
    task = make_task("nightly")
    make_execution(task, "failed", NOW - dt.timedelta(days=10))
    with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as ctx:
        assert counters.counts() == {(task.id, "failed"): 1}
    assert not [q for q in ctx.captured_queries if not q["sql"].startswith("SELECT")]
    assert not TallyMark.objects.exists()
