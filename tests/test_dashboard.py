"""The dashboard page: health, summaries, trends, alerts, circuits, failures, SVG charts,
the in-place refresh fragment, permissions and a query count that does not grow."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cronjobs.models import CircuitState, Execution, Task
from tests.helpers import ago, make_alert, make_execution, make_task, make_user

pytestmark = pytest.mark.django_db

URL = reverse("cronjobs-dashboard")
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def history(frozen):
    Task.objects.all().delete()
    good, bad = make_task("store_stats", priority=2), make_task("ai_insights", priority=4)
    for hours in range(1, 49):
        make_execution(
            good, "succeeded", ago(hours=hours), duration=3.0, peak_rss_bytes=64 * 1024**2
        )
    make_execution(bad, "succeeded", ago(days=2))
    make_execution(bad, "timed_out", ago(hours=3), error="timed out after 600 s")
    make_execution(bad, "failed", ago(hours=2), error="RateLimitError: slow down")
    make_execution(bad, "skipped", ago(hours=1), skip_reason="circuit_open")
    CircuitState.objects.create(task=bad, state="open", opened_at=NOW - dt.timedelta(hours=1))
    make_alert(bad, "circuit_open", severity="critical", message="5 failed attempts within 1 hour")
    return good, bad


def section(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}".*?(?=<div class="module|\Z)', page, re.S)
    assert match, element_id
    return match.group(0)


def test_health_table_puts_the_critical_task_first_with_its_figures(admin_client, history):
    page = admin_client.get(URL).content.decode()
    health = section(page, "fc-health")
    assert health.index("ai_insights") < health.index("store_stats")
    assert 'fc-badge fc-critical">critical' in health and 'fc-badge fc-healthy">healthy' in health
    assert "100%" in health and "3.0 s" in health and "64 MiB" in health
    assert "1 alert" in health


def test_alerts_circuits_and_recent_failures_are_listed(admin_client, history):
    page = admin_client.get(URL).content.decode()
    assert "5 failed attempts within 1 hour" in section(page, "fc-alerts")
    assert "ai_insights" in section(page, "fc-circuits")
    failures = section(page, "fc-failures")
    assert "RateLimitError: slow down" in failures and "timed out after 600 s" in failures
    assert failures.index("RateLimitError") < failures.index("timed out after")  # newest first


def test_daily_trends_add_up_every_task_per_day(admin_client, history):
    trends = section(admin_client.get(URL).content.decode(), "fc-trends")
    today = re.search(r"Fri 20 Nov.*?</tr>", trends, re.S).group(0)
    cells = re.findall(r'class="fc-num">([^<]*)<', today)
    # store_stats ran 12 times today (hours 1..12 before noon) and ai_insights failed twice.
    assert cells[:5] == ["14", "12", "2", "1", "86%"]


def test_charts_are_inline_svg_without_any_external_resource(admin_client, history):
    page = admin_client.get(URL).content.decode()
    for chart in ("fc-chart-runs", "fc-chart-success", "fc-chart-duration", "fc-chart-memory"):
        assert "<svg" in section(page, chart)
    assert "Runs per hour, last 24 hours" in page and "timed out" in section(page, "fc-chart-runs")
    external = re.findall(r'(?:src|href)="(https?:)?//', page)
    assert external == []


def test_partial_is_the_refreshable_fragment_only(admin_client, history):
    response = admin_client.get(URL, {"partial": "1"})
    html = response.content.decode()
    assert 'id="fc-health"' in html and "<svg" in html
    assert "<html" not in html and "dashboard.js" not in html
    full = admin_client.get(URL).content.decode()
    assert 'data-partial-url="/admin/dashboard/?partial=1"' in full and "dashboard.js" in full


def test_content_is_rendered_once_per_cache_window_for_everyone(
    admin_client, client, history, settings
):
    settings.CRONJOBS_DASHBOARD_CACHE_SECONDS = 15
    cache.clear()
    first = admin_client.get(URL, {"partial": "1"}).content.decode()
    make_execution(history[0], "failed", ago(minutes=1), error="written after the render")
    viewer = make_user("viewer", "view_execution")
    client.force_login(viewer)
    with CaptureQueriesContext(connection) as ctx:
        again = client.get(URL, {"partial": "1"}).content.decode()
    assert again == first  # another user, the same figures "as of" the first render
    assert not any("cronjobs_execution" in q["sql"] for q in ctx.captured_queries)
    cache.clear()  # the window passes
    assert "written after the render" in admin_client.get(URL).content.decode()


def test_admin_index_links_to_the_dashboard(admin_client):
    assert URL in admin_client.get(reverse("admin:index")).content.decode()


def test_empty_install_renders_with_hints(admin_client, frozen):
    Task.objects.all().delete()
    page = admin_client.get(URL).content.decode()
    assert "manage.py synctasks" in page and "No runs in this period" in page


def test_query_count_does_not_grow_with_history(admin_client, frozen):
    def queries() -> int:
        cache.clear()  # closed days' figures: computed on both visits
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(URL).status_code == 200
        return len(ctx)

    tasks = [make_task() for _ in range(3)]
    for task in tasks:
        make_execution(task, "failed")
    before = queries()
    for i in range(60):
        status = ("succeeded", "failed", "skipped", "timed_out")[i % 4]
        make_execution(tasks[i % 3], status, ago(hours=i))
    assert queries() == before


def test_needs_staff_login_and_the_view_permission(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(make_user("tasks_only", "view_task"))
    assert client.get(URL).status_code == 403
    client.force_login(make_user("reader", "view_execution"))
    assert client.get(URL).status_code == 200


def test_only_rows_on_display_are_read(admin_client, history):
    """Aggregates only: no query selects execution rows beyond the handful shown."""
    with CaptureQueriesContext(connection) as ctx:
        admin_client.get(URL)
    unbounded = [
        q["sql"]
        for q in ctx.captured_queries
        if 'FROM "cronjobs_execution"' in q["sql"].replace("`", '"')
        and "LIMIT" not in q["sql"]
        and "GROUP BY" not in q["sql"]
        and "COUNT(" not in q["sql"]
        and "IN (SELECT" not in q["sql"]
    ]
    assert unbounded == [], unbounded
    assert Execution.objects.count() > 50


def test_trends_are_small_multiples_sharing_one_scoped_style_sheet(admin_client, history):
    page = admin_client.get(URL).content.decode()
    success = section(page, "fc-chart-success")
    charts = re.findall(r'<figure class="fc-chart" data-task="([^"]+)">', success)
    assert charts == ["ai_insights", "store_stats"]  # one per task with runs, by name
    assert "Success rate per day (%), last 7 days, one chart per task" in success
    assert success.count("<style") == 1  # the first multiple carries the shared sheet
    sheet = re.search(r"<style[^>]*>(.*?)</style>", success, re.S).group(1)
    selectors = [s.strip() for rule in re.findall(r"([^{}]*)\{", sheet) for s in rule.split(",")]
    assert all(s.startswith(".fc-multiples-grid svg") for s in selectors)  # never page-wide
    assert "<script" not in section(page, "fc-chart-runs") + success  # pygal's unused config
