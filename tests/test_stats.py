"""cronjobs.reporting.stats against hand-built executions: the numbers the API, Prometheus and the
dashboard show."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cronjobs.reporting import stats
from cronjobs.supervisor import alerts
from cronjobs.views import dashboard
from tests.api_fixtures import client_for
from tests.helpers import make_execution, make_task
from tests.test_prometheus import scrape, value

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@pytest.mark.django_db
def test_summary_counts_rate_and_duration_figures():
    task = make_task()
    for seconds in range(1, 21):  # durations 1..20 s; every 4th attempt failed
        status = "failed" if seconds % 4 == 0 else "succeeded"
        make_execution(
            task,
            status,
            NOW - dt.timedelta(minutes=seconds),
            duration=float(seconds),
            peak_rss_bytes=seconds * 1_000_000,
        )
    make_execution(task, "timed_out", NOW - dt.timedelta(minutes=30), duration=60.0)
    make_execution(task, "skipped", NOW - dt.timedelta(minutes=31), skip_reason="overlap")
    make_execution(task, "running", NOW - dt.timedelta(minutes=1))

    summary = stats.task_summaries(NOW - dt.timedelta(hours=1), NOW)[task.id]

    assert (summary.runs, summary.succeeded, summary.failed) == (22, 15, 5)
    assert (summary.timed_out, summary.skipped, summary.running) == (1, 1, 1)
    assert summary.failures == 6
    assert summary.success_rate == pytest.approx(100 * 15 / 21)  # the running one is not judged yet
    assert summary.max_duration == 60.0
    assert summary.avg_duration == pytest.approx((210 + 60) / 21)
    # rank ceil(0.95 * 21) = 20 of 1..20, 60; read from the histogram, within 4 %
    assert summary.p95_duration == pytest.approx(20.0, rel=0.04)
    assert summary.max_peak_rss_bytes == 20_000_000
    assert summary.avg_peak_rss_bytes == pytest.approx(10_500_000)


@pytest.mark.django_db
def test_p95_is_nearest_rank_per_task():
    slow, quick = make_task("slow"), make_task("quick")
    for seconds in range(1, 101):
        make_execution(
            slow, started_at=NOW - dt.timedelta(seconds=seconds), duration=float(seconds)
        )
    make_execution(quick, started_at=NOW - dt.timedelta(seconds=5), duration=0.5)

    summaries = stats.task_summaries(NOW - dt.timedelta(hours=1), NOW)

    assert summaries[slow.id].p95_duration == pytest.approx(95.0, rel=0.04)
    assert summaries[quick.id].p95_duration == 0.5  # the only duration: exact


@pytest.mark.django_db
def test_p95_with_tied_durations_is_the_tied_value():
    task = make_task()
    for n in range(10):
        make_execution(task, started_at=NOW - dt.timedelta(seconds=n + 1), duration=7.0)
    assert stats.task_summaries(NOW - dt.timedelta(hours=1), NOW)[task.id].p95_duration == 7.0


@pytest.mark.django_db
def test_window_is_half_open_and_tasks_without_rows_are_absent():
    task, idle = make_task(), make_task("idle")
    make_execution(task, started_at=NOW - dt.timedelta(hours=24))  # exactly at `since`: inside
    make_execution(task, "failed", started_at=NOW)  # exactly at `until`: outside
    make_execution(idle, started_at=NOW - dt.timedelta(hours=25))

    summaries = stats.task_summaries(NOW - dt.timedelta(hours=24), NOW)

    assert summaries[task.id].runs == 1
    assert summaries[task.id].success_rate == 100.0
    assert idle.id not in summaries
    assert stats.TaskSummary(idle.id).success_rate is None


@pytest.mark.django_db
def test_window_until_defaults_to_now_when_travelling():
    task = make_task()
    make_execution(task, started_at=NOW - dt.timedelta(minutes=5))
    make_execution(task, started_at=NOW + dt.timedelta(minutes=5))
    with time_machine.travel(NOW, tick=False):
        summaries = stats.task_summaries(NOW - dt.timedelta(hours=1))
    assert summaries[task.id].runs == 1


@pytest.mark.django_db
def test_summaries_take_the_same_few_queries_for_any_number_of_tasks():
    def queries(tasks: int) -> int:
        for _ in range(tasks):
            task = make_task()
            make_execution(task, started_at=NOW - dt.timedelta(hours=30))  # a whole day
            make_execution(task, started_at=NOW - dt.timedelta(minutes=90))  # a whole hour
            make_execution(task, started_at=NOW + dt.timedelta(minutes=1))  # this hour
        later = NOW + dt.timedelta(minutes=10)
        with time_machine.travel(later, tick=False), CaptureQueriesContext(connection) as ctx:
            stats.task_summaries(NOW - dt.timedelta(hours=48, minutes=30))
        return len(ctx.captured_queries)

    few = queries(3)
    # the task ids, two history pieces (the partial first hour and this one), three runs of
    # rollups (hours, whole days, hours), each with its histograms, the running attempts
    assert few == 1 + 2 + 3 + 1
    assert queries(30) == few


@pytest.mark.django_db
def test_last_executions_skip_running_and_skipped_rows(django_assert_num_queries):
    task, other = make_task(), make_task("other")
    make_execution(task, "failed", NOW - dt.timedelta(hours=2))
    latest = make_execution(task, "succeeded", NOW - dt.timedelta(hours=1))
    make_execution(task, "skipped", NOW - dt.timedelta(minutes=30), skip_reason="disabled")
    make_execution(task, "running", NOW - dt.timedelta(minutes=5))
    other_fail = make_execution(other, "timed_out", NOW - dt.timedelta(minutes=10))
    make_task("never_ran")

    with django_assert_num_queries(1):
        last = stats.last_executions()

    assert {k: v.id for k, v in last.items()} == {task.id: latest.id, other.id: other_fail.id}


@pytest.mark.django_db
def test_last_executions_with_status_finds_last_success():
    task = make_task()
    success = make_execution(task, "succeeded", NOW - dt.timedelta(hours=3))
    make_execution(task, "failed", NOW - dt.timedelta(hours=1))
    assert stats.last_executions(status="succeeded")[task.id].id == success.id


@pytest.mark.django_db
def test_runs_per_hour_fills_empty_hours_and_counts_by_outcome(settings):
    settings.TIME_ZONE = "Pacific/Auckland"
    task = make_task()
    make_execution(task, "succeeded", NOW - dt.timedelta(minutes=10))
    make_execution(task, "failed", NOW - dt.timedelta(minutes=20))
    make_execution(task, "skipped", NOW - dt.timedelta(hours=2), skip_reason="circuit_open")
    make_execution(task, "succeeded", NOW - dt.timedelta(hours=30))  # outside 24 h

    with timezone.override("Pacific/Auckland"):
        hours = stats.runs_per_hour(24, now=NOW)

    assert len(hours) == 24
    assert hours[-1].hour == dt.datetime(2026, 11, 21, 1, 0, tzinfo=ZoneInfo("Pacific/Auckland"))
    assert (hours[-1].succeeded, hours[-1].failed) == (0, 0)  # 12:00 UTC is 01:00 NZDT
    assert (hours[-2].succeeded, hours[-2].failed) == (1, 1)
    assert hours[-3].skipped == 1
    assert sum(h.succeeded for h in hours) == 1


@pytest.mark.django_db
def test_runs_per_hour_across_dst_start_keeps_one_hour_buckets():
    # Auckland springs forward at 02:00 NZST on 2026-09-27 (14:00 UTC on the 26th).
    task = make_task()
    change = dt.datetime(2026, 9, 26, 14, 0, tzinfo=dt.UTC)
    make_execution(task, started_at=change + dt.timedelta(minutes=30))  # 03:30 NZDT
    make_execution(task, started_at=change - dt.timedelta(minutes=30))  # 01:30 NZST

    with timezone.override("Pacific/Auckland"):
        hours = stats.runs_per_hour(4, now=change + dt.timedelta(hours=1, minutes=5))

    labels = [h.hour.strftime("%H:%M") for h in hours]
    assert labels == ["00:00", "01:00", "03:00", "04:00"]
    assert [h.succeeded for h in hours] == [0, 1, 1, 0]


@pytest.mark.django_db
def test_daily_trends_use_local_dates():
    task = make_task()
    with timezone.override("Pacific/Auckland"):  # the rollups' days are local days too
        # 11:30 UTC on the 19th is 00:30 on the 20th in Auckland; 10:30 UTC is 23:30 on the 19th.
        when = dt.datetime(2026, 11, 19, 11, 30, tzinfo=dt.UTC)
        make_execution(task, "succeeded", when, duration=4.0)
        when = dt.datetime(2026, 11, 19, 10, 30, tzinfo=dt.UTC)
        make_execution(task, "failed", when, duration=2.0)
        trends = stats.daily_trends(3, now=NOW)

    by_date = {t.date: t for t in trends}
    assert set(by_date) == {dt.date(2026, 11, 19), dt.date(2026, 11, 20)}
    assert by_date[dt.date(2026, 11, 20)].success_rate == 100.0
    assert by_date[dt.date(2026, 11, 19)].failures == 1
    assert by_date[dt.date(2026, 11, 19)].max_duration == 2.0


@pytest.mark.django_db
def test_daily_trends_leave_out_days_before_the_window():
    task = make_task()
    make_execution(task, started_at=NOW - dt.timedelta(days=3))
    make_execution(task, started_at=NOW - dt.timedelta(hours=1))
    with timezone.override("UTC"):
        trends = stats.daily_trends(2, now=NOW)
    assert [(t.date, t.runs) for t in trends] == [(NOW.date(), 1)]


@pytest.mark.mariadb
@pytest.mark.django_db
def test_a_month_of_histograms_for_one_task_is_never_cut_short():
    """The histograms of a window are joined by GROUP_CONCAT, which MySQL cuts at 1 KB by
    default (MariaDB at 1 MB): the connection raises the limit, and thirty hourly histograms
    of one task, each in its own bin, add up to the right p95."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@session.group_concat_max_len")
        assert cursor.fetchone()[0] >= 64 * 2**20
    task = make_task()
    durations = [0.01 * 1.5**k for k in range(30)]  # thirty bins, one an hour
    for hours, duration in enumerate(durations, start=2):
        make_execution(task, started_at=NOW - dt.timedelta(hours=hours), duration=duration)
    with time_machine.travel(NOW, tick=False):
        summary = stats.task_summaries(NOW - dt.timedelta(hours=40))[task.id]
    assert summary.runs == 30
    assert summary.p95_duration == pytest.approx(sorted(durations)[28], rel=0.04)


@pytest.mark.django_db
def test_the_last_attempt_shown_is_the_latest_ended_one_a_stop_included():
    task = make_task()
    make_execution(task, "succeeded", NOW - dt.timedelta(hours=2))
    stopped = make_execution(task, "cancelled", NOW - dt.timedelta(hours=1), stopped_by="ops")
    make_execution(task, "running", NOW - dt.timedelta(minutes=5))

    assert stats.last_executions()[task.id].id == stopped.id


def _mixed_history(task) -> None:
    """7 succeeded and 3 failed over the ten hours before NOW (the rollups' hours), and a stop,
    a skip and a running attempt that no success rate counts: 70 %."""
    statuses = ["succeeded"] * 7 + ["failed", "timed_out", "abandoned"] + ["cancelled", "skipped"]
    for hours, status in enumerate(statuses, start=1):
        started = NOW - dt.timedelta(hours=hours, minutes=10)
        make_execution(task, status, started, skip_reason="overlap" if status == "skipped" else "")
    make_execution(task, "running", NOW - dt.timedelta(minutes=5))


@pytest.mark.django_db
def test_one_history_has_one_success_rate_in_the_alert_api_metrics_dashboard_and_task_list(
    admin_client, settings
):
    settings.TIME_ZONE = "UTC"  # the ten hours are one local day, the dashboard's day row
    task = make_task("mixed", success_target=99.0)
    _mixed_history(task)
    api = client_for("read_write")
    with time_machine.travel(NOW, tick=False):
        alert_rate = alerts.check_success_rate(task)
        api_task = {t["name"]: t for t in api.get("/api/tasks/").json()["tasks"]}["mixed"]
        api_metrics = api.get("/api/metrics/?hours=24").json()
        page = dashboard.build_context(NOW)
        task_list = admin_client.get(reverse("admin:cronjobs_task_changelist")).content.decode()
    metrics = scrape()
    health = next(h for h in page["health"] if h.task == task)

    assert alert_rate == 70.0
    assert task.alerts.get(kind="success_rate").message.startswith("70.0 % of 10 attempts")
    assert api_task["success_rate_24h"] == 70.0
    assert [row["success_rate"] for row in api_metrics["tasks"] if row["task"] == "mixed"] == [70.0]
    assert api_metrics["totals"]["success_rate"] == 70.0  # no other task ran
    assert value(metrics, "flagged_cron_success_percent_24h", task="mixed") == 70.0
    assert (health.day.success_rate, health.month.success_rate) == (70.0, 70.0)
    assert page["day_totals"][0].success_rate == 70.0
    assert "70% of 10" in task_list
