"""The per-hour and per-day rollups: the rows cronjobs.history keeps as attempts are finalised,
their rebuild from the history, and the window figures stats reads from them (through the
shape in cronjobs.reporting.rollups)."""

from __future__ import annotations

import datetime as dt
import io
import math
import random
import threading

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from cronjobs import history
from cronjobs.models import Execution, Lease, Rollup
from cronjobs.reporting import rollups, stats
from cronjobs.supervisor import lease, spool
from cronjobs.supervisor.pruning import prune
from tests.helpers import make_execution, make_task

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 20, 12, 20, tzinfo=dt.UTC)
STATUSES = ("succeeded", "succeeded", "succeeded", "failed", "timed_out", "skipped", "cancelled")


def table() -> dict[tuple[int, str, dt.datetime], dict]:
    """Every rollup row's figures, by (task, span, start)."""
    rows = Rollup.objects.values()
    return {
        (r["task_id"], r["span"], r["start"]): {
            k: v for k, v in r.items() if k not in ("id", "task_id", "span", "start")
        }
        for r in rows
    }


def random_history(task, rng: random.Random, count: int, days: float = 3.0) -> list[Execution]:
    rows = []
    for _ in range(count):
        status = rng.choice(STATUSES)
        started = NOW - dt.timedelta(seconds=rng.uniform(0, days * 86400))
        duration = round(rng.lognormvariate(1.0, 1.2), 3)
        fields = {"duration": duration, "peak_rss_bytes": rng.randrange(1, 500) * 1_000_000}
        rows.append(make_execution(task, status, started, **fields))
    return rows


def exact(rows: list[Execution], since: dt.datetime, until: dt.datetime) -> dict:
    """What stats should say, computed the slow way from the rows."""
    inside = [r for r in rows if since <= r.started_at < until]
    timed = sorted(r.duration for r in inside if r.status in Execution.FINISHED)
    rank = math.ceil(0.95 * len(timed)) if timed else 0
    return {
        "succeeded": sum(r.status == "succeeded" for r in inside),
        "failed": sum(r.status == "failed" for r in inside),
        "skipped": sum(r.status == "skipped" for r in inside),
        "cancelled": sum(r.status == "cancelled" for r in inside),
        "running": sum(r.status == "running" for r in inside),
        "avg_duration": sum(timed) / len(timed) if timed else None,
        "max_duration": max(timed, default=None),
        "p95": timed[rank - 1] if timed else None,
    }


def test_finalising_an_attempt_adds_it_to_its_hour_and_its_day():
    task = make_task()
    when = dt.datetime(2026, 11, 20, 9, 15, tzinfo=dt.UTC)
    with timezone.override("UTC"):
        make_execution(task, "succeeded", when, duration=2.0, peak_rss_bytes=10)
        make_execution(task, "failed", when, duration=4.0, peak_rss_bytes=30)
        make_execution(task, "skipped", when, skip_reason="overlap")
        make_execution(task, "running", when)
    rows = table()
    hour = rows[task.pk, "hour", dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)]
    day = rows[task.pk, "day", dt.datetime(2026, 11, 20, tzinfo=dt.UTC)]
    assert hour == day
    assert (hour["succeeded"], hour["failed"], hour["skipped"]) == (1, 1, 1)
    assert (hour["duration_sum"], hour["duration_count"]) == (6.0, 2)  # the skip has no say
    assert (hour["duration_min"], hour["duration_max"], hour["memory_max"]) == (2.0, 4.0, 30)
    assert hour["histogram"] == {str(rollups.bin_of(2.0)): 1, str(rollups.bin_of(4.0)): 1}
    assert len(rows) == 2  # the running attempt is in no rollup yet


def test_local_hours_and_days_follow_the_time_zone_across_daylight_saving():
    """London falls back on 25 October 2026: that day has 25 hours, 01:00 twice."""
    task = make_task()
    with timezone.override("Europe/London"):
        for hour in range(26):  # 23:30 UTC on the 24th (00:30 BST) to 00:30 on the 26th
            moment = dt.datetime(2026, 10, 24, 23, 30, tzinfo=dt.UTC) + dt.timedelta(hours=hour)
            make_execution(task, "succeeded", moment)
        days = {r.start: r.succeeded for r in Rollup.objects.filter(span="day")}
        hours = Rollup.objects.filter(
            span="hour", start__lt=dt.datetime(2026, 10, 26, tzinfo=dt.UTC)
        )
        trends = stats.daily_trends(3, now=dt.datetime(2026, 10, 26, 12, tzinfo=dt.UTC))
    # The 25th began at 23:00 UTC on the 24th (BST) and ended at midnight UTC (GMT).
    assert days == {
        dt.datetime(2026, 10, 24, 23, tzinfo=dt.UTC): 25,
        dt.datetime(2026, 10, 26, 0, tzinfo=dt.UTC): 1,
    }
    assert hours.count() == 25 and all(r.succeeded == 1 for r in hours)
    assert [(t.date.day, t.succeeded) for t in trends] == [(25, 25), (26, 1)]


def test_windows_read_from_rollups_agree_with_the_history():
    rng = random.Random(7)
    task = make_task()
    with time_machine.travel(NOW, tick=False):
        rows = random_history(task, rng, 400)
        rows.append(make_execution(task, "running", NOW - dt.timedelta(hours=5)))
        rows.append(make_execution(task, "running", NOW - dt.timedelta(minutes=2)))
        windows = [
            (NOW - dt.timedelta(hours=24), NOW),  # partial first hour, the open hour
            (NOW - dt.timedelta(days=2, hours=7), NOW),  # whole days in the middle
            (dt.datetime(2026, 11, 18, tzinfo=dt.UTC), dt.datetime(2026, 11, 20, tzinfo=dt.UTC)),
            (NOW - dt.timedelta(minutes=15), NOW),  # the open hour alone
        ]
        for since, until in windows:
            summary = stats.task_summaries(since, until)[task.pk]
            want = exact(rows, since, until)
            assert (summary.succeeded, summary.failed, summary.skipped) == (
                want["succeeded"],
                want["failed"],
                want["skipped"],
            ), (since, until)
            assert (summary.cancelled, summary.running) == (want["cancelled"], want["running"])
            assert summary.avg_duration == pytest.approx(want["avg_duration"])
            assert summary.max_duration == want["max_duration"]
            assert summary.p95_duration == pytest.approx(want["p95"], rel=0.04)


def test_a_rebuild_gives_the_rows_the_runs_wrote():
    rng = random.Random(11)
    first, second = make_task(), make_task()
    with time_machine.travel(NOW, tick=False):
        random_history(first, rng, 150)
        random_history(second, rng, 150)
        make_execution(first, "running", NOW - dt.timedelta(hours=2))
        written = table()
        Rollup.objects.all().delete()
        assert history.rebuild() == len(written)
    rebuilt = table()
    assert rebuilt.keys() == written.keys()
    for key, figures in written.items():
        assert rebuilt[key].pop("histogram") == figures.pop("histogram"), key
        assert rebuilt[key] == pytest.approx(figures), key


def test_a_finish_landing_after_the_abandon_replaces_it():
    """The watchdog abandoned a run whose supervisor was only slow; when that supervisor does
    finish the attempt, the rollups count the outcome once, not the abandon as well."""
    task = make_task()
    row = make_execution(task, "running", timezone.now() - dt.timedelta(minutes=3))
    gone = Lease(task=task, run_id=row.run_id, host="h", pid=1)
    assert lease.abandon_run(gone) == 1
    assert Rollup.objects.get(span="hour").abandoned == 1
    row.status, row.duration = "succeeded", 180.0
    history.save(row)
    hour = Rollup.objects.get(span="hour")
    assert (hour.abandoned, hour.succeeded, hour.duration_count) == (0, 1, 1)
    assert hour.duration_sum == pytest.approx(180.0)


def test_a_spool_line_replayed_twice_counts_once(tmp_path, settings):
    settings.LOG_DIR = str(tmp_path)
    task = make_task()
    row = Execution(
        run_id="a" * 32,
        task=task,
        status="failed",
        started_at=timezone.now() - dt.timedelta(minutes=1),
        finished_at=timezone.now(),
        duration=3.0,
    )
    spool.append(task.name, row)
    spool.append(task.name, row)  # the same line again: a replay that stopped half-way
    assert spool.replay() == 2
    assert Execution.objects.count() == 1
    hour = Rollup.objects.get(span="hour")
    assert (hour.failed, hour.duration_count, hour.duration_sum) == (1, 1, 3.0)


def test_pruning_history_keeps_the_30_day_figures():
    task = make_task()
    with time_machine.travel(NOW, tick=False):
        for days in (5, 20, 40):
            make_execution(task, "succeeded", NOW - dt.timedelta(days=days), duration=2.0)
        before = stats.task_summaries(NOW - dt.timedelta(days=30))[task.pk]
        assert prune(days=10)["executions"] == 2
        after = stats.task_summaries(NOW - dt.timedelta(days=30))[task.pk]
        assert history.rebuild() > 0  # a rebuild starts at the oldest execution left
        rebuilt = stats.task_summaries(NOW - dt.timedelta(days=30))[task.pk]
    assert before.succeeded == after.succeeded == rebuilt.succeeded == 2


def test_the_p95_of_a_long_tailed_history_is_within_four_percent():
    rng = random.Random(3)
    task = make_task()
    durations = [round(rng.lognormvariate(2.0, 1.5), 3) for _ in range(2000)]
    with time_machine.travel(NOW, tick=False):
        for k, duration in enumerate(durations):
            when = NOW - dt.timedelta(hours=30) + dt.timedelta(seconds=40 * k)
            make_execution(task, "succeeded", when, duration=duration)
        p95 = stats.task_summaries(NOW - dt.timedelta(hours=31))[task.pk].p95_duration
    truth = sorted(durations)[math.ceil(0.95 * len(durations)) - 1]
    assert p95 == pytest.approx(truth, rel=0.04)


@pytest.mark.django_db(transaction=True)
def test_hosts_finishing_attempts_of_one_task_at_once_lose_none():
    if connection.vendor != "mysql":
        pytest.skip("SQLite serialises writers; the race needs MariaDB (DATABASE_URL=mysql://...)")
    task = make_task()
    start = threading.Barrier(4)
    when = timezone.now() - dt.timedelta(minutes=1)

    def host() -> None:
        start.wait()
        for _ in range(25):
            make_execution(task, "succeeded", when, duration=1.5)
        connection.close()

    threads = [threading.Thread(target=host) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for span in ("hour", "day"):
        row = Rollup.objects.get(span=span)
        assert (row.succeeded, row.duration_count) == (100, 100)
        assert row.histogram == {str(rollups.bin_of(1.5)): 100}


def test_rebuild_rollups_command_and_its_bad_input():
    task = make_task()
    make_execution(task, "succeeded", timezone.now() - dt.timedelta(days=2))
    Rollup.objects.all().delete()
    out = io.StringIO()
    call_command("rebuild_rollups", stdout=out)
    assert "rebuilt 2 rollup row(s) for the whole history" in out.getvalue()
    since = timezone.localdate().isoformat()
    call_command("rebuild_rollups", "--since", since, stdout=out)
    assert f"since {since}" in out.getvalue()
    assert Rollup.objects.count() == 2  # today had nothing to rebuild; the old day stays
    for bad, message in (
        ("yesterday", "--since must be a date as YYYY-MM-DD, not 'yesterday'"),
        ("2026-02-30", "--since must be a date as YYYY-MM-DD"),
        ("2999-01-01", "--since 2999-01-01 is in the future"),
    ):
        with pytest.raises(CommandError, match=message) as caught:
            call_command("rebuild_rollups", "--since", bad)
        assert caught.value.returncode == 2
