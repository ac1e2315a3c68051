"""GET /api/metrics/?hours=N: per task figures within the window, and bad input."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from tests.api_fixtures import client_for
from tests.helpers import make_execution, make_task

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def metrics_for(api, name: str, query: str = "") -> dict:
    with time_machine.travel(NOW, tick=False):
        response = api.get(f"/api/metrics/{query}")
    assert response.status_code == 200, response.content
    return {row["task"]: row for row in response.json()["tasks"]}[name]


@pytest.mark.django_db
def test_figures_match_the_executions():
    api = client_for("read_write")
    task = make_task("nightly")
    for n in range(1, 21):
        status = "failed" if n in (3, 7) else "succeeded"
        make_execution(
            task, status, NOW - dt.timedelta(minutes=n), duration=float(n), peak_rss_bytes=n * 2**20
        )
    make_execution(task, "memory_exceeded", NOW - dt.timedelta(minutes=30), duration=40.0)
    make_execution(task, "skipped", NOW - dt.timedelta(minutes=40), skip_reason="overlap")

    row = metrics_for(api, "nightly")

    assert (row["runs"], row["succeeded"], row["failed"]) == (21, 18, 2)
    assert (row["memory_exceeded"], row["failures"], row["skipped"]) == (1, 3, 1)
    assert row["success_rate"] == round(100 * 18 / 21, 2)
    assert row["p95_duration"] == pytest.approx(20.0, rel=0.04)  # from the histogram
    assert row["max_duration"] == 40.0
    assert row["avg_duration"] == round((210 + 40) / 21, 3)
    assert row["max_peak_rss_bytes"] == 20 * 2**20


@pytest.mark.django_db
def test_hours_bounds_the_window():
    api = client_for("read_write")
    task = make_task("nightly")
    make_execution(task, "succeeded", NOW - dt.timedelta(hours=1))
    make_execution(task, "failed", NOW - dt.timedelta(hours=23, minutes=59))
    make_execution(task, "failed", NOW - dt.timedelta(hours=24, minutes=1))
    make_execution(task, "timed_out", NOW - dt.timedelta(days=29))

    assert metrics_for(api, "nightly", "?hours=1")["runs"] == 1  # exactly 1 h ago: included
    day = metrics_for(api, "nightly")
    assert (day["runs"], day["success_rate"]) == (2, 50.0)
    month = metrics_for(api, "nightly", "?hours=720")
    assert (month["runs"], month["timed_out"]) == (4, 1)


@pytest.mark.django_db
def test_window_and_totals_are_reported():
    api = client_for("read_write")
    task = make_task("nightly")
    make_execution(task, "succeeded", NOW - dt.timedelta(hours=2))
    make_execution(make_task("other"), "failed", NOW - dt.timedelta(hours=2))
    with time_machine.travel(NOW, tick=False):
        body = api.get("/api/metrics/?hours=6").json()
    assert body["hours"] == 6
    assert body["until"] == "2026-11-20T12:00:00+00:00"
    assert body["since"] == "2026-11-20T06:00:00+00:00"
    assert body["totals"]["runs"] == 2
    assert body["totals"]["success_rate"] == 50.0


@pytest.mark.django_db
def test_tasks_without_history_are_listed_with_zeros():
    api = client_for("read_write")
    make_task("quiet")
    row = metrics_for(api, "quiet")
    assert (row["runs"], row["success_rate"], row["p95_duration"]) == (0, None, None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?hours=abc", "hours must be a whole number from 1 to 720"),
        ("?hours=0", "hours must be from 1 to 720, not 0"),
        ("?hours=721", "hours must be from 1 to 720, not 721"),
        ("?hours=100000", "hours must be from 1 to 720, not 100000"),
        ("?hours=-5", "hours must be from 1 to 720, not -5"),
        ("?hours=", "hours must be a whole number from 1 to 720"),
        ("?hours=1.5", "hours must be a whole number from 1 to 720"),
        ("?hours=99999999999999999999999", "hours must be from 1 to 720"),
        ("?days=3", "unknown parameter 'days' (allowed: hours)"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(query, message):
    api = client_for("read_write")
    response = api.get(f"/api/metrics/{query}")
    assert response.status_code == 400
    assert message in response.json()["error"]
