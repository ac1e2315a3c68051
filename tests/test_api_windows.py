"""Maintenance windows in the JSON API (docs/api.md, "Maintenance windows"): GET /api/windows/
lists them, POST /api/windows/ opens a one-off window, POST /api/windows/ID/end/ ends it; all
through cronjobs.actions. Reads need `view_maintenancewindow`, writes
`change_maintenancewindow`; bad input is a 400 naming the problem and writes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.models import LogEntry

from cronjobs import actions
from cronjobs.models import MaintenanceWindow
from tests.api_fixtures import CALLERS, client_for
from tests.helpers import make_task
from tests.test_api_auth import expected_status

pytestmark = pytest.mark.django_db
READ = {caller: expected_status(caller, "view_maintenancewindow") for caller in CALLERS}
WRITE = {caller: expected_status(caller, "change_maintenancewindow") for caller in CALLERS}
CSRF = "x" * 32


def _csrf(client):
    client.cookies["csrftoken"] = CSRF
    return {"x-csrftoken": CSRF}


def _open(hours: float = 2, tasks: str = "nightly", mode: str = "skip") -> MaintenanceWindow:
    until = datetime.now(UTC) + timedelta(hours=hours)
    return actions.open_window(
        actions.Actor.for_command("test"), tasks.split(","), mode, "deploy", until
    )


@pytest.mark.parametrize("caller", CALLERS)
def test_list_windows_access(caller):
    make_task("nightly")
    _open()
    response = client_for(caller).get("/api/windows/")
    assert response.status_code == READ[caller], response.content
    if response.status_code == 200:
        (window,) = response.json()["windows"]
        assert window["active"] is True and window["tasks"] == ["nightly"]
    else:
        assert "error" in response.json()


@pytest.mark.parametrize("caller", CALLERS)
def test_open_window_access(caller):
    make_task("nightly")
    client = client_for(caller)
    body = {"tasks": ["nightly"], "minutes": 90, "mode": "mute", "reason": "router swap"}
    response = client.post(
        "/api/windows/", json.dumps(body), "application/json", headers=_csrf(client)
    )
    expected = 201 if WRITE[caller] == 200 else WRITE[caller]
    assert response.status_code == expected, response.content
    assert MaintenanceWindow.objects.exists() is (expected == 201)


@pytest.mark.parametrize("caller", CALLERS)
def test_end_window_access(caller):
    make_task("nightly")
    window = _open()
    client = client_for(caller)
    response = client.post(f"/api/windows/{window.pk}/end/", headers=_csrf(client))
    assert response.status_code == WRITE[caller], response.content
    window.refresh_from_db()
    assert (window.ends_at <= datetime.now(UTC)) is (response.status_code == 200)


def test_open_a_window_for_every_task_and_read_it_back():
    make_task("nightly")
    client = client_for("read_write")
    until = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    body = {"tasks": "*", "until": until.isoformat(), "mode": "skip", "reason": "stock take"}
    response = client.post("/api/windows/", json.dumps(body), "application/json")
    assert response.status_code == 201
    window = response.json()
    assert window["tasks"] == ["*"] and window["ends_at"] == until.isoformat()
    assert window["active"] is True and window["created_by"] == "token 'deploy'"
    task = client.get("/api/tasks/nightly/").json()
    assert task["maintenance"] == {
        "window": window["id"],
        "mode": "skip",
        "reason": "stock take",
        "until": until.isoformat(),
    }
    entry = LogEntry.objects.get(
        object_id=str(window["id"]), content_type__model="maintenancewindow"
    )
    assert "through the api by token 'deploy'" in entry.change_message


def test_ending_twice_says_it_was_over_and_a_recurring_window_is_refused():
    make_task("nightly")
    window = _open()
    client = client_for("read_write")
    assert client.post(f"/api/windows/{window.pk}/end/").json()["ended"] is True
    ended = client.post(f"/api/windows/{window.pk}/end/").json()
    assert ended["ended"] is False and ended["window"]["active"] is False
    assert client.get("/api/windows/").json()["windows"] == []
    assert len(client.get("/api/windows/?past=1").json()["windows"]) == 1
    recurring = MaintenanceWindow.objects.create(
        name="sunday", recurring=True, tasks="nightly", reason="x", start="0 22 * * 0",
        duration=3600, time_zone="UTC",
    )  # fmt: skip
    response = client.post(f"/api/windows/{recurring.pk}/end/")
    assert response.status_code == 409 and "tasks file" in response.json()["error"]
    assert client.post("/api/windows/999/end/").status_code == 404


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"minutes": 30, "mode": "skip", "reason": "x"}, "tasks is required"),
        ({"tasks": "nightly", "minutes": 30, "reason": "x"}, "mode is required"),
        ({"tasks": "nightly", "minutes": 30, "mode": "skip"}, "reason is required"),
        ({"tasks": "nightly", "mode": "skip", "reason": "x"}, "give exactly one of until"),
        ({"tasks": "nope", "minutes": 30, "mode": "skip", "reason": "x"}, "unknown task 'nope'"),
        ({"tasks": "nightly", "minutes": 30, "mode": "pause", "reason": "x"}, "mode 'pause'"),
        ({"tasks": "nightly", "minutes": 0, "mode": "skip", "reason": "x"}, "from 1 to 43200"),
        ({"tasks": "nightly", "minutes": "a", "mode": "skip", "reason": "x"}, "whole number"),
        (
            {"tasks": "nightly", "until": "2020-01-01T00:00", "mode": "skip", "reason": "x"},
            "is not in the future",
        ),
        ({"tasks": "nightly", "until": "soon", "mode": "skip", "reason": "x"}, "until: 'soon'"),
        ({"tasks": [1, 2], "minutes": 30, "mode": "skip", "reason": "x"}, "list of strings"),
        (
            {"tasks": "nightly", "minutes": 30, "mode": "skip", "reason": "x" * 501},
            "1 to 500 characters",
        ),
        (
            {"tasks": "nightly", "minutes": 30, "mode": "skip", "reason": "x", "hours": 2},
            "unknown parameter 'hours'",
        ),
    ],
)
def test_bad_window_input_is_a_400_naming_the_problem(body, problem):
    make_task("nightly")
    response = client_for("read_write").post("/api/windows/", json.dumps(body), "application/json")
    assert response.status_code == 400, response.content
    assert problem in response.json()["error"]
    assert not MaintenanceWindow.objects.exists()


def test_a_body_that_is_not_a_json_object_is_a_400_and_a_wrong_method_a_405():
    client = client_for("read_write")
    response = client.post("/api/windows/", "[1]", "application/json")
    assert response.status_code == 400 and "must be an object" in response.json()["error"]
    response = client.delete("/api/windows/")
    assert response.status_code == 405 and response["Allow"] == "GET, POST, HEAD"
    assert client.get("/api/windows/1/end/").status_code == 405
