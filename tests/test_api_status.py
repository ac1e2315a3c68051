"""GET /api/status/: overall health, what runs now, open alerts and circuits, last runs."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from cronjobs.models import CircuitState, Task
from tests.api_fixtures import client_for
from tests.helpers import make_alert, make_execution, make_task

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def status() -> dict:
    with time_machine.travel(NOW, tick=False):
        response = client_for("read_only").get("/api/status/")
    assert response.status_code == 200
    return response.json()


@pytest.fixture(autouse=True)
def only_our_tasks(db):
    """Tasks synced after migrate would make every status 'idle'-heavy; start from none."""
    Task.objects.all().delete()


@pytest.mark.django_db
def test_all_good_is_healthy():
    task = make_task("nightly")
    make_execution(task, "succeeded", NOW - dt.timedelta(hours=1))
    body = status()
    assert body["status"] == "healthy"
    assert body["tasks"] == {"total": 1, "by_health": {"healthy": 1}}
    assert body["running"] == []
    assert body["open_alerts"] == []
    assert body["open_circuits"] == []
    assert body["last_runs"][0]["task"] == "nightly"
    assert body["last_runs"][0]["last_run"]["status"] == "succeeded"


@pytest.mark.django_db
def test_open_warning_alert_degrades_and_is_listed():
    task = make_task("nightly")
    make_execution(task, "succeeded", NOW - dt.timedelta(hours=1))
    make_alert(task, "slow", state="acknowledged", message="took 70 s")
    make_alert(task, "late", state="resolved", message="old")
    body = status()
    assert body["status"] == "degraded"
    assert [(a["task"], a["kind"], a["state"]) for a in body["open_alerts"]] == [
        ("nightly", "slow", "acknowledged")
    ]
    assert body["open_alerts"][0]["message"] == "took 70 s"


@pytest.mark.django_db
def test_open_circuit_is_critical_and_listed():
    task = make_task("nightly")
    make_execution(task, "failed", NOW - dt.timedelta(hours=1))
    CircuitState.objects.create(task=task, state="open", opened_at=NOW - dt.timedelta(minutes=5))
    body = status()
    assert body["status"] == "critical"
    assert body["open_circuits"] == [
        {"task": "nightly", "state": "open", "opened_at": "2026-11-20T11:55:00+00:00"}
    ]
    assert body["last_runs"][0]["health"] == "critical"


@pytest.mark.django_db
def test_running_attempts_are_listed_with_elapsed_time():
    task = make_task("nightly")
    make_execution(task, "running", NOW - dt.timedelta(minutes=2), host="app1", pid=4242)
    body = status()
    assert body["running"] == [
        {
            "task": "nightly",
            "run_id": body["running"][0]["run_id"],
            "attempt": 1,
            "trigger": "manual",
            "host": "app1",
            "pid": 4242,
            "started_at": "2026-11-20T11:58:00+00:00",
            "elapsed_seconds": 120.0,
        }
    ]


@pytest.mark.django_db
def test_times_are_in_the_configured_zone():
    task = make_task("nightly")
    make_execution(task, "succeeded", NOW - dt.timedelta(hours=1))
    with timezone.override("Pacific/Auckland"):
        body = status()
    assert body["generated_at"] == "2026-11-21T01:00:00+13:00"
    assert body["last_runs"][0]["last_run"]["started_at"] == "2026-11-21T00:00:00+13:00"


@pytest.mark.django_db
def test_query_count_does_not_grow_with_tasks():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for("read_only")
    counts = []
    for n in range(6):
        task = make_task(f"task{n}")
        make_execution(task, "succeeded", NOW - dt.timedelta(hours=1))
        make_alert(task, "slow", message="s")
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/status/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[-1] <= 15


@pytest.mark.django_db
def test_database_trouble_is_a_503_json_not_a_500(monkeypatch):
    from django.db import OperationalError

    def unreachable():
        raise OperationalError("(2013, 'Lost connection to server during query')")

    client = client_for("read_only")
    monkeypatch.setattr("cronjobs.views.payloads.status_payload", unreachable)
    response = client.get("/api/status/")
    assert response.status_code == 503
    assert response.json() == {"error": "database unavailable, try again shortly"}
