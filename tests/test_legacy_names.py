"""Smart Cron V2 names (cronjobs/legacy/): the old config keys in the tasks file, the prefix on
the compatibility views' task_name, and the smart_cron_alerts view, on MariaDB."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from cronjobs.legacy import legacy_name, modern_name, prefix_problem
from cronjobs.models import Execution, Task
from cronjobs.supervisor.registry import Registry
from tests.helpers import make_alert, make_execution, make_task
from tests.test_sql_views import CHECK_FAILURES, RECENT_EXECUTIONS, query

V2_TASK = """
[tasks.stock_sync]
command = ["php", "/srv/portal/cron/stock_sync.php"]
timeout = 600
max_retries = 5
enable_circuit_breaker = false
"""


def test_v2_keys_are_accepted_with_the_new_meaning_and_a_warning(settings, tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text(V2_TASK)
    settings.CRONJOBS_TASKS_FILE = path
    registry = Registry().load()
    spec = registry.tasks["stock_sync"]
    assert (spec.max_attempts, spec.circuit_breaker) == (5, False)
    assert registry.errors == []
    assert sorted(str(w) for w in registry.warnings) == [
        "task 'stock_sync': enable_circuit_breaker: is the Smart Cron V2 name: use circuit_breaker",
        "task 'stock_sync': max_retries: is the Smart Cron V2 name: use max_attempts",
    ]


def test_an_old_key_and_its_new_name_together_are_an_error(settings, tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text(V2_TASK + "max_attempts = 2\n")
    settings.CRONJOBS_TASKS_FILE = path
    (error,) = Registry().load().errors
    assert (
        str(error)
        == "task 'stock_sync': max_retries: is the old name of max_attempts, which is also set"
    )


def test_an_old_key_keeps_its_type_check(settings, tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text(V2_TASK.replace("max_retries = 5", 'max_retries = "5"'))
    settings.CRONJOBS_TASKS_FILE = path
    (error,) = Registry().load().errors
    assert str(error) == "task 'stock_sync': max_attempts: '5' is not a whole number"


def test_manage_check_prints_a_warning_naming_the_new_key(manage, tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text(V2_TASK)
    result = manage("check", env_extra={"CRONJOBS_TASKS_FILE": str(path)})
    assert result.returncode == 0, result.stderr
    warning = "task 'stock_sync': max_retries: is the Smart Cron V2 name: use max_attempts"
    assert f"(cronjobs.W001) {warning}" in result.stderr
    assert "enable_circuit_breaker: is the Smart Cron V2 name: use circuit_breaker" in result.stderr


def test_a_prefix_that_cannot_go_into_sql_fails_the_check(manage):
    result = manage("check", env_extra={"CRONJOBS_LEGACY_PREFIX": "x'; DROP TABLE y; --"})
    assert result.returncode != 0
    assert "(cronjobs.E003) CRONJOBS_LEGACY_PREFIX:" in result.stderr
    assert prefix_problem("flagged_products_") == "" and prefix_problem("") == ""


def test_names_map_both_ways(settings):
    assert modern_name("flagged_products_generate_daily_products") == "generate_daily_products"
    assert modern_name("nightly_backup") == "nightly_backup"
    assert modern_name("flagged_products_") == "flagged_products_"  # nothing left: kept
    assert legacy_name("refresh_leaderboard") == "flagged_products_refresh_leaderboard"
    settings.CRONJOBS_LEGACY_PREFIX = "shop_"
    assert modern_name("shop_refresh_leaderboard") == "refresh_leaderboard"


@pytest.fixture
def v2_history(db):
    now = timezone.now()
    daily = Task.objects.get(name="generate_daily_products")  # declared, synced at migrate
    for hours, status in ((1, "succeeded"), (2, "failed"), (3, "failed")):
        make_execution(daily, status, now - dt.timedelta(hours=hours), duration=45.0)
    return daily, now


@pytest.mark.mariadb
def test_the_seeds_queries_and_an_old_name_filter_match_the_v2_names(v2_history):
    rows = [r for r in query(RECENT_EXECUTIONS) if "generate_daily_products" in r["task_name"]]
    assert {r["task_name"] for r in rows} == {"flagged_products_generate_daily_products"}
    failures = {r["task_name"]: r["failure_count"] for r in query(CHECK_FAILURES)}
    assert failures["flagged_products_generate_daily_products"] == 2
    old_filter = query(
        "SELECT COUNT(*) AS n, SUM(success) AS ok FROM flagged_products_cron_metrics "
        "WHERE task_name = 'flagged_products_generate_daily_products'"
    )
    assert (old_filter[0]["n"], int(old_filter[0]["ok"])) == (3, 1)
    health = query(
        "SELECT health_status FROM vw_flagged_products_cron_health "
        "WHERE task_name = 'flagged_products_generate_daily_products'"
    )
    assert [r["health_status"] for r in health] == ["critical"]


@pytest.mark.mariadb
def test_smart_cron_alerts_shows_the_alerts_with_v2_names(v2_history):
    daily, _ = v2_history
    alert = make_alert(daily, "failed", message="generate_daily_products failed 3 times")
    resolved = make_alert(daily, "slow", state="resolved", resolved_at=timezone.now())
    rows = query(
        "SELECT * FROM smart_cron_alerts WHERE task_name = "
        "'flagged_products_generate_daily_products' ORDER BY id"
    )
    assert [(r["id"], r["alert_type"], r["status"], r["resolved"]) for r in rows] == [
        (alert.id, "failed", "open", 0),
        (resolved.id, "slow", "resolved", 1),
    ]
    assert rows[0]["message"] == "generate_daily_products failed 3 times"
    assert rows[0]["severity"] == alert.severity and rows[0]["acknowledged"] == 0
    utc, auckland = (
        query("SELECT created_at FROM smart_cron_alerts")[0]["created_at"],
        query("SELECT created_at FROM smart_cron_alerts", time_zone="+13:00")[0]["created_at"],
    )
    assert auckland - utc == dt.timedelta(hours=13)


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)  # CREATE VIEW commits on MySQL
def test_the_views_follow_a_changed_prefix(settings):
    from cronjobs.legacy import sql_views

    task = make_task("v_store")
    make_execution(task, "succeeded")
    settings.CRONJOBS_LEGACY_PREFIX = "shop_"
    try:
        with connection.schema_editor(atomic=False) as editor:
            sql_views.create(editor)
        names = {
            r["task_name"] for r in query("SELECT task_name FROM flagged_products_cron_metrics")
        }
        assert "shop_v_store" in names
    finally:
        settings.CRONJOBS_LEGACY_PREFIX = "flagged_products_"
        with connection.schema_editor(atomic=False) as editor:
            sql_views.create(editor)
    assert Execution.objects.count() == 1
