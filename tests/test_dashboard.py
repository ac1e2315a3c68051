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
from django.utils import timezone

from cronjobs.models import CircuitState, Execution, Task
from cronjobs.views import charts
from tests.helpers import ago, make_alert, make_execution, make_task, make_user

pytestmark = pytest.mark.django_db

OVERVIEW = ("view_execution", "view_task", "view_alert")
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
    viewer = make_user("viewer", *OVERVIEW)
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


def test_needs_staff_login_and_the_view_permissions_of_what_it_shows(client):
    """Runs, task health and alert messages: each its own view permission."""
    response = client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    for lacking in OVERVIEW:
        client.force_login(make_user(f"no_{lacking}", *(set(OVERVIEW) - {lacking})))
        assert client.get(URL).status_code == 403, lacking
        assert client.get(URL, {"partial": "1"}).status_code == 403, lacking
        assert URL not in client.get(reverse("admin:index")).content.decode()
    client.force_login(make_user("reader", *OVERVIEW))
    assert client.get(URL).status_code == 200
    assert URL in client.get(reverse("admin:index")).content.decode()
    client.force_login(make_user("shopper", *OVERVIEW, staff=False))
    assert client.get(URL).status_code == 302


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


def figure(page: str, chart: str, task: str) -> str:
    """The SVG drawn for `task` in one of the small-multiple sections."""
    pattern = rf'<figure class="fc-chart" data-task="{re.escape(task)}">(<svg.*?</svg>)'
    match = re.search(pattern, section(page, chart), re.S)
    assert match, (chart, task)
    return match.group(1)


def texts(svg: str, group: str) -> list[str]:
    """The texts of one labelled group of a chart (fc-x, fc-y, fc-legend), in order."""
    match = re.search(rf'<g class="{group}"[^>]*>(.*?)</g>', svg, re.S)
    assert match, group
    return re.findall(r"<text[^>]*>([^<]*)</text>", match.group(1))


def test_trends_are_small_multiples_of_plain_svg_that_cannot_restyle_the_page(
    admin_client, history
):
    page = admin_client.get(URL, {"partial": "1"}).content.decode()
    success = section(page, "fc-chart-success")
    charts = re.findall(r'<figure class="fc-chart" data-task="([^"]+)">', success)
    assert charts == ["ai_insights", "store_stats"]  # one per task with runs, by name
    assert success.count("<svg") == 2
    assert "Success rate per day (%), last 7 days, one chart per task" in success
    # Presentation attributes only: no style sheet reaches the admin around the charts.
    assert "<style" not in page and "<script" not in page
    named = 'role="img" aria-label="store_stats: success rate per day in %, last 7 days"'
    assert named in success
    days = texts(figure(page, "fc-chart-success", "store_stats"), "fc-x")
    assert days == ["14 Nov", "16 Nov", "18 Nov", "20 Nov"]  # four dates across the window


def test_percentages_keep_a_0_to_100_axis_and_other_units_get_round_ticks(admin_client, history):
    page = admin_client.get(URL, {"partial": "1"}).content.decode()
    # store_stats: 100 % every day, 3.0 s and 64 MiB each run.
    success = figure(page, "fc-chart-success", "store_stats")
    assert texts(success, "fc-y") == ["0", "25", "50", "75", "100"] and ">%</text>" in success
    duration = figure(page, "fc-chart-duration", "store_stats")
    assert texts(duration, "fc-y") == ["0", "1", "2", "3"] and ">s</text>" in duration
    memory = figure(page, "fc-chart-memory", "store_stats")
    assert texts(memory, "fc-y") == ["0", "20", "40", "60", "80"] and ">MiB</text>" in memory


def test_a_day_without_runs_is_a_gap_in_the_line_not_a_zero(admin_client, frozen):
    Task.objects.all().delete()
    task = make_task("nightly")
    for days in (6, 5, 3, 1, 0):  # nothing on the 16th and the 18th
        make_execution(task, "succeeded", ago(days=days, hours=1), duration=2.0)
    svg = figure(admin_client.get(URL).content.decode(), "fc-chart-duration", "nightly")
    line = re.search(r'<path class="fc-line" d="([^"]+)"', svg).group(1)
    assert [len(run.split("L")) for run in re.findall(r"M[^M]+", line)] == [2, 2]
    assert svg.count("<circle") == 1  # the 17th, alone between two gaps
    zero = float(re.search(r'<path d="M54,([\d.]+)H394"', svg).group(1))  # the x axis
    ys = [float(y) for y in re.findall(r",([\d.]+)", line) + re.findall(r'cy="([\d.]+)"', svg)]
    assert len(ys) == 5 and max(ys) < zero  # 2.0 s each day with runs, none drawn at 0


def test_task_names_are_escaped_in_the_charts(admin_client, frozen):
    Task.objects.all().delete()
    name = """<script>alert("x")</script> & 'co'"""
    make_execution(make_task(name), "succeeded", ago(hours=1))
    page = admin_client.get(URL, {"partial": "1"}).content.decode()
    assert "<script" not in page
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;co&#x27;"
    svg = figure(page, "fc-chart-success", escaped)  # data-task, escaped by the template
    assert f'aria-label="{escaped}: success rate' in svg and f">{escaped}</text>" in svg


def test_runs_per_hour_stacks_outcomes_with_legend_hours_and_time_zone(admin_client, history):
    runs = section(admin_client.get(URL, {"partial": "1"}).content.decode(), "fc-chart-runs")
    assert texts(runs, "fc-legend") == ["succeeded", "failed", "timed out", "skipped"]
    hours = texts(runs, "fc-x")
    assert len(hours) == 8 and all(int(h[:2]) % 3 == 0 and h.endswith(":00") for h in hours)
    assert f"local hour ({timezone.get_current_timezone_name()})" in runs
    assert texts(runs, "fc-y") == ["0", "1", "2"]  # whole runs; at most two in an hour
    failed_at = timezone.localtime(NOW - dt.timedelta(hours=2)).strftime("%H:00")
    assert f"<title>{failed_at} failed: 1</title>" in runs
    assert f'fill="{charts.OUTCOME_COLOURS["timed_out"]}"' in runs
