"""GET /api/tasks/, /api/tasks/<name>/ and the POST actions run, enable, disable."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from cronjobs.models import CircuitState, Execution, Task
from tests.api_fixtures import client_for
from tests.helpers import make_execution, make_task, wait_for

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)  # 01:00 on the 21st in Auckland


def by_name(response) -> dict[str, dict]:
    assert response.status_code == 200
    return {task["name"]: task for task in response.json()["tasks"]}


@pytest.mark.django_db
def test_task_list_shows_settings_schedule_and_next_run(settings):
    api = client_for("read_write")
    settings.TIME_ZONE = "Pacific/Auckland"
    make_task("nightly", schedule="5 7 * * *", timeout=600, priority=1, memory_limit=512 * 2**20)
    with time_machine.travel(NOW, tick=False), timezone.override("Pacific/Auckland"):
        task = by_name(api.get("/api/tasks/"))["nightly"]
    assert task["schedule_text"] == "At 07:05 AM"
    assert task["next_run"] == "2026-11-21T07:05:00+13:00"
    assert (task["timeout"], task["priority"], task["enabled"]) == (600, 1, True)
    assert task["memory_limit_bytes"] == 512 * 2**20
    assert task["circuit_state"] == "closed"  # no CircuitState row yet
    assert (task["last_status"], task["last_run"], task["health"]) == (None, None, "idle")


@pytest.mark.django_db
def test_task_list_shows_last_run_success_and_circuit():
    api = client_for("read_write")
    task = make_task("nightly", schedule="0 2 * * *")
    now = timezone.now()
    ok = make_execution(task, "succeeded", now - dt.timedelta(hours=3), duration=12.5)
    make_execution(
        task,
        "timed_out",
        now - dt.timedelta(hours=1),
        error="timed out after 60 s",
        peak_rss_bytes=100 << 20,
        memory_added_bytes=60 << 20,
    )
    make_execution(task, "skipped", now - dt.timedelta(minutes=5), skip_reason="circuit_open")
    CircuitState.objects.create(task=task, state="open", opened_at=now)

    data = by_name(api.get("/api/tasks/"))["nightly"]

    assert data["last_status"] == "timed_out"
    assert data["last_run"]["error"] == "timed out after 60 s"
    assert data["last_run"]["peak_rss_bytes"] == 100 << 20
    assert data["last_run"]["memory_added_bytes"] == 60 << 20
    assert data["last_run"]["job_memory_bytes"] == 60 << 20
    assert data["last_success_at"] == timezone.localtime(ok.finished_at).isoformat()
    assert data["circuit_state"] == "open"
    assert data["health"] == "critical"
    assert data["success_rate_24h"] == 50.0


@pytest.mark.django_db
def test_task_detail_and_unknown_task():
    api = client_for("read_write")
    make_task("nightly")
    assert api.get("/api/tasks/nightly/").json()["name"] == "nightly"
    response = api.get("/api/tasks/no_such_task/")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown task 'no_such_task'"}


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/tasks/?x=1", "/api/tasks/nightly/?verbose=1"])
def test_unknown_parameters_are_400(url):
    api = client_for("read_write")
    make_task("nightly")
    response = api.get(url)
    assert response.status_code == 400
    assert "unknown parameter" in response.json()["error"]


@pytest.mark.django_db
def test_disable_and_enable():
    api = client_for("read_write")
    task = make_task("nightly")
    response = api.post("/api/tasks/nightly/disable/")
    assert response.json() == {"task": "nightly", "enabled": False}
    assert Task.objects.get(pk=task.pk).enabled is False
    assert by_name(api.get("/api/tasks/"))["nightly"]["health"] == "disabled"
    api.post("/api/tasks/nightly/enable/")
    assert Task.objects.get(pk=task.pk).enabled is True


@pytest.mark.django_db
def test_changes_are_written_to_the_daily_log_with_the_caller(log_dir):
    make_task("nightly")
    client_for("read_write").post("/api/tasks/nightly/disable/")
    lines = client_for("read_only").get("/api/logs/").json()["lines"]
    assert lines[-1].endswith("nightly disabled through the API by token 'deploy'")


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["run", "enable", "disable"])
def test_actions_on_unknown_task_are_404(action):
    api = client_for("read_write")
    response = api.post(f"/api/tasks/ghost/{action}/")
    assert response.status_code == 404
    assert "ghost" in response.json()["error"]


@pytest.mark.django_db
def test_run_now_refuses_disabled_and_retired_tasks():
    api = client_for("read_write")
    Task.objects.filter(name="test_succeed").update(enabled=False)  # synced after migrate
    make_task("gone", retired_at=timezone.now())
    response = api.post("/api/tasks/test_succeed/run/")
    assert response.status_code == 409
    assert "disabled" in response.json()["error"]
    response = api.post("/api/tasks/gone/run/")
    assert response.status_code == 409
    assert "retired" in response.json()["error"]
    assert not Execution.objects.filter(task__name__in=["test_succeed", "gone"]).exists()


@pytest.mark.django_db(transaction=True)
def test_run_now_starts_a_real_run_and_returns_its_id(manage, monkeypatch):
    from cronjobs.supervisor.sync import sync_all

    sync_all()
    for key, value in manage.env().items():
        monkeypatch.setenv(key, value)  # the detached runjob writes to the test database
    response = client_for("read_write").post("/api/tasks/test_succeed/run/")
    assert response.status_code == 202
    run_id = response.json()["run_id"]

    finished = Execution.objects.filter(run_id=run_id).exclude(status="running")
    row = wait_for(finished.first, timeout=60, interval=0.2, what=f"run {run_id} to finish")
    assert (row.status, row.trigger) == ("succeeded", "api")
