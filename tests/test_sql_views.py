"""The seed's monitoring SQL, run unchanged against the compatibility views on MariaDB, checked
against the same hand-built executions through reporting.stats and reporting.health.

The views read the database clock (NOW(), UTC_TIMESTAMP()), which time travel cannot move, so
these executions are placed relative to the real current time."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from cronjobs.models import CircuitState, Task
from cronjobs.reporting import health, stats
from tests.helpers import make_alert, make_execution, make_task

# The seed document's queries, verbatim (seed/000_960c6cea7da5421c.txt, "MONITORING QUERIES").
CHECK_PERFORMANCE = "SELECT * FROM vw_flagged_products_cron_performance;"
CHECK_DAILY_TRENDS = """SELECT * FROM vw_flagged_products_cron_daily_trends
WHERE execution_date >= DATE_SUB(CURDATE(), INTERVAL 7 DAY)
ORDER BY execution_date DESC;"""
CHECK_HEALTH = "SELECT * FROM vw_flagged_products_cron_health;"
RECENT_EXECUTIONS = """SELECT
    task_name,
    success,
    ROUND(execution_time, 2) as time_seconds,
    ROUND(memory_used / 1024 / 1024, 2) as memory_mb,
    created_at
FROM flagged_products_cron_metrics
WHERE created_at >= DATE_SUB(NOW(), INTERVAL 24 HOUR)
ORDER BY created_at DESC
LIMIT 50;"""
CHECK_FAILURES = """SELECT
    task_name,
    COUNT(*) as failure_count,
    MAX(created_at) as last_failure
FROM flagged_products_cron_metrics
WHERE success = 0
AND created_at >= DATE_SUB(NOW(), INTERVAL 24 HOUR)
GROUP BY task_name
ORDER BY failure_count DESC;"""

MB = 2**20
V2 = "flagged_products_"  # CRONJOBS_LEGACY_PREFIX: the views show V2's task names


def query(sql: str, time_zone: str | None = None) -> list[dict]:
    with connection.cursor() as cursor:
        if time_zone:
            cursor.execute(f"SET time_zone = '{time_zone}'")
        cursor.execute(sql)
        names = [col[0] for col in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        if time_zone:
            cursor.execute("SET time_zone = DEFAULT")
    return rows


def by_task(rows: list[dict], prefix: str = "v_") -> dict[str, dict]:
    """Rows by task name, the V2 prefix taken off."""
    return {
        row["task_name"].removeprefix(V2): row
        for row in rows
        if row["task_name"].startswith(V2 + prefix)
    }


@pytest.fixture
def history(db):
    """Two tasks with a known month: 'v_steady' mostly succeeds, 'v_shaky' mostly fails."""
    now = timezone.now()
    steady, shaky = make_task("v_steady"), make_task("v_shaky")
    for n in range(10):
        status = "failed" if n == 4 else "succeeded"
        make_execution(
            steady,
            status,
            now - dt.timedelta(hours=2 + n * 12),
            duration=10.0 + n,
            peak_rss_bytes=(100 + n) * MB,
        )
    make_execution(steady, "succeeded", now - dt.timedelta(days=40), duration=999.0)  # too old
    make_execution(steady, "skipped", now - dt.timedelta(hours=1), skip_reason="overlap")
    make_execution(steady, "running", now - dt.timedelta(minutes=1))
    # Stopped by an operator: neither a success nor a failure, in the views as in Python.
    make_execution(steady, "cancelled", now - dt.timedelta(hours=5), duration=1.0)
    for n in range(4):
        status = ("failed", "timed_out", "failed", "succeeded")[n]  # newest first
        make_execution(
            shaky, status, now - dt.timedelta(hours=3 + n), duration=60.0, peak_rss_bytes=MB
        )
    return steady, shaky, now


@pytest.mark.mariadb
def test_performance_view_matches_thirty_day_stats(history):
    steady, shaky, now = history
    rows = by_task(query(CHECK_PERFORMANCE))
    summaries = stats.task_summaries(now - dt.timedelta(days=30), now + dt.timedelta(seconds=1))

    for task in (steady, shaky):
        row, summary = rows[task.name], summaries[task.id]
        assert row["total_executions"] == summary.finished
        assert row["successful_executions"] == summary.succeeded
        assert row["failed_executions"] == summary.failures
        assert float(row["success_rate"]) == round(summary.success_rate, 2)
        assert float(row["avg_execution_time"]) == pytest.approx(summary.avg_duration, abs=1e-3)
        assert float(row["max_execution_time"]) == summary.max_duration
        assert row["max_memory_used"] == summary.max_peak_rss_bytes
    assert rows["v_steady"]["total_executions"] == 10  # no skip, running, cancelled or older
    assert float(rows["v_steady"]["success_rate"]) == 90.0


@pytest.mark.mariadb
def test_daily_trends_query_uses_the_session_dates(history):
    now = history[2]
    offset = dt.timedelta(hours=13)
    rows = query(CHECK_DAILY_TRENDS, time_zone="+13:00")
    mine = [row for row in rows if row["task_name"] == V2 + "v_steady"]

    dates = [row["execution_date"] for row in mine]
    assert dates == sorted(dates, reverse=True)
    today = (now + offset).date()
    expected = {
        (now - dt.timedelta(hours=2 + n * 12) + offset).date()
        for n in range(10)
        if (now - dt.timedelta(hours=2 + n * 12) + offset).date() >= today - dt.timedelta(days=7)
    }
    assert set(dates) == expected
    assert sum(row["total_executions"] for row in mine) == 10


@pytest.mark.mariadb
def test_daily_trends_view_matches_stats_daily_trends(history):
    steady = history[0]
    rows = query(
        "SELECT * FROM vw_flagged_products_cron_daily_trends "
        "WHERE task_name = 'flagged_products_v_steady' "
        "AND execution_date > DATE_SUB(CURDATE(), INTERVAL 30 DAY)"
    )
    with timezone.override("UTC"):  # the test session's zone is the server's: UTC
        trends = [t for t in stats.daily_trends(30) if t.task_id == steady.id]
    # The view has a row per day with finished runs; stats also reports a day whose only rows
    # are running or skipped (just after midnight, the fixture's running row is such a day).
    assert {r["execution_date"]: r["total_executions"] for r in rows} == {
        t.date: t.finished for t in trends if t.finished
    }


@pytest.mark.mariadb
def test_recent_executions_query(history):
    rows = [r for r in query(RECENT_EXECUTIONS) if r["task_name"].startswith(V2 + "v_")]

    assert len(rows) == 2 + 4  # steady ran at -2 h and -14 h within 24 h; shaky 4 times
    assert [r["created_at"] for r in rows] == sorted((r["created_at"] for r in rows), reverse=True)
    first = rows[0]  # steady at -2 h: 10 s, 100 MiB
    assert (first["task_name"], first["success"]) == (V2 + "v_steady", 1)
    assert float(first["time_seconds"]) == 10.0
    assert float(first["memory_mb"]) == 100.0


@pytest.mark.mariadb
def test_created_at_is_shown_in_the_session_time_zone(history):
    now = history[2]
    sql = "SELECT created_at FROM flagged_products_cron_metrics "
    sql += "WHERE task_name = 'flagged_products_v_steady' "
    sql += "ORDER BY created_at DESC LIMIT 1"
    utc = query(sql)[0]["created_at"]
    auckland_summer = query(sql, time_zone="+13:00")[0]["created_at"]
    assert auckland_summer - utc == dt.timedelta(hours=13)
    expected = now - dt.timedelta(hours=2) + dt.timedelta(seconds=1)  # make_execution's finished_at
    assert abs(utc - expected.replace(tzinfo=None)) < dt.timedelta(seconds=1)


@pytest.mark.mariadb
def test_check_failures_query(history):
    rows = by_task(query(CHECK_FAILURES))
    assert rows["v_shaky"]["failure_count"] == 3  # two failed, one timed out
    assert rows["v_shaky"]["last_failure"] == max(
        r["created_at"]
        for r in query(RECENT_EXECUTIONS)
        if r["task_name"] == V2 + "v_shaky" and not r["success"]
    )
    assert "v_steady" not in rows  # its one failure was 50 hours ago


@pytest.mark.mariadb
def test_health_view_agrees_with_cronjobs_health(history):
    _steady, _shaky, now = history
    make_task("v_idle")
    make_task("v_off", enabled=False)
    tripped = make_task("v_tripped")
    make_execution(tripped, "succeeded", now - dt.timedelta(hours=1))
    CircuitState.objects.create(task=tripped, state="open", opened_at=now)
    alerted = make_task("v_alerted")
    make_execution(alerted, "succeeded", now - dt.timedelta(hours=1))
    make_alert(alerted, "slow", message="slow")
    flaky = make_task("v_flaky")  # 80 % in 24 h, last one succeeded: warning
    for n in range(5):
        make_execution(flaky, "failed" if n == 3 else "succeeded", now - dt.timedelta(hours=n + 1))

    # The seed's view keeps the seed's fixed cut-offs (below 90 % warning, below 50 % critical),
    # which are what a task with a 90 % success target gets from cronjobs.reporting.health
    # wherever a rate under 50 % comes with a failed last attempt (as v_shaky's does).
    names = ["v_steady", "v_shaky", "v_idle", "v_off", "v_tripped", "v_alerted", "v_flaky"]
    Task.objects.filter(name__in=names).update(success_target=90)
    tasks = list(Task.objects.filter(name__in=names))
    rows = by_task(query(CHECK_HEALTH))
    expected = {h.task.name: h.status for h in health.task_health(tasks).values()}

    assert {name: row["health_status"] for name, row in rows.items()} == expected
    assert expected == {
        "v_steady": "healthy",
        "v_shaky": "critical",
        "v_idle": "idle",
        "v_off": "disabled",
        "v_tripped": "critical",
        "v_alerted": "warning",
        "v_flaky": "warning",
    }
    assert rows["v_tripped"]["circuit_state"] == "open"
    assert rows["v_alerted"]["open_alerts"] == 1
    assert float(rows["v_flaky"]["success_rate_24h"]) == 80.0
    assert rows["v_shaky"]["last_status"] == "failed"
    assert rows["v_idle"]["last_execution"] is None


@pytest.mark.django_db
def test_the_five_views_exist_on_mariadb_and_none_on_sqlite():
    views = set(connection.introspection.table_names(include_views=True)) - set(
        connection.introspection.table_names()
    )
    expected = {
        "flagged_products_cron_metrics",
        "vw_flagged_products_cron_performance",
        "vw_flagged_products_cron_daily_trends",
        "vw_flagged_products_cron_health",
        "smart_cron_alerts",
    }
    assert views == (expected if connection.vendor == "mysql" else set())


@pytest.mark.mariadb
@pytest.mark.django_db
def test_memory_used_is_the_jobs_own_figure():
    """A function's row shows what the job added over its worker, a command's its peak."""
    func, script = make_task("v_function"), make_task("v_script", kind="command")
    make_execution(func, "succeeded", peak_rss_bytes=110 << 20, memory_added_bytes=64 << 20)
    make_execution(script, "succeeded", peak_rss_bytes=2 << 20)
    rows = query("SELECT task_name, memory_used FROM flagged_products_cron_metrics")
    used = {
        r["task_name"].removeprefix(V2): r["memory_used"]
        for r in rows
        if r["task_name"] in (V2 + "v_function", V2 + "v_script")
    }
    assert used == {"v_function": 64 << 20, "v_script": 2 << 20}
    performance = by_task(query("SELECT * FROM vw_flagged_products_cron_performance"))
    assert performance["v_function"]["max_memory_used"] == 64 << 20


def test_the_views_count_the_statuses_the_model_calls_finished_and_failures():
    """The views' SQL spells out statuses (it must stay plain SQL that keeps its index plans):
    it may not drift from Execution.FINISHED and Execution.FAILURES."""
    import re

    from cronjobs.legacy import sql_views
    from cronjobs.models import Execution

    def quoted(sql: str) -> set[str]:
        return set(re.findall(r"'([a-z_]+)'", sql))

    statuses = {status.value for status in Execution.Status}
    attempts = statuses - {Execution.Status.SKIPPED}  # a skip is attempt 0: `e.attempt >= 1`
    assert attempts - quoted(sql_views.FINISHED) == set(Execution.FINISHED)
    assert "NOT IN" in sql_views.FINISHED
    assert quoted(sql_views.FAILURES) == set(Execution.FAILURES)
