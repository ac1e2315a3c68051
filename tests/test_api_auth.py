"""Who may call each API endpoint and /metrics: the access matrix of docs/api.md, table-driven
(a new endpoint is one line in ENDPOINTS). Reads need the view permission of the admin page
showing the same rows, writes `change_task`; a token acts with its creator's permissions.
tests/test_production_doors.py runs the same table through gunicorn."""

from __future__ import annotations

import pytest
from django.test import Client

from cronjobs.models import Lease, Task
from cronjobs.supervisor.registry import build_spec
from cronjobs.tasksettings import TaskSpec
from tests.api_fixtures import CALLERS, READ_PERMS, WRITE_PERMS, client_for, post_with_csrf
from tests.helpers import ago, make_execution, make_task

# (method, URL, permission needed). Writes name the task "nightly" (tests create it).
ENDPOINTS = [
    ("GET", "/api/tasks/", "view_task"),
    ("GET", "/api/tasks", "view_task"),
    ("GET", "/api/tasks/nightly/", "view_task"),
    ("GET", "/api/status/", "view_execution+view_task+view_alert"),
    ("GET", "/api/metrics/", "view_execution"),
    ("GET", "/api/logs/", "view_execution"),
    ("GET", "/api/running/", "view_execution"),
    ("GET", f"/api/runs/{'f' * 32}/output/?offset=2", "view_execution"),
    ("GET", "/metrics", "view_execution"),
    ("HEAD", "/api/status/", "view_execution+view_task+view_alert"),
    ("GET", "/api/windows/", "view_maintenancewindow"),
    ("POST", "/api/tasks/nightly/enable/", "change_task"),
    ("POST", "/api/tasks/nightly/disable/", "change_task"),
    ("POST", "/api/tasks/nightly/run/", "change_task"),
    ("POST", "/api/tasks/nightly/stop/", "change_task"),
]
# The permissions each caller acts with; None: not authenticated at all.
CALLER_PERMS = {
    "anonymous": None,
    "non_staff": (),
    "staff": (),
    "viewer": READ_PERMS,
    "staff_writer": WRITE_PERMS,
    "read_only": READ_PERMS,  # its owner may write; the token may not
    "read_write": WRITE_PERMS,
    "orphan_token": WRITE_PERMS,  # made on the command line by the host's operator
    "deactivated_owner": None,  # a token dies with its creator
    "deleted_owner": None,
    "demoted_owner": None,
    "revoked": None,
}


def expected_status(caller: str, permission: str) -> int:
    """`permission` may name several, joined by "+"."""
    perms = CALLER_PERMS[caller]
    if perms is None:
        return 401
    return 200 if all(p in perms for p in permission.split("+")) else 403


def cells():
    return [(m, u, p, c) for m, u, p in ENDPOINTS for c in CALLERS]


def declared(name: str) -> TaskSpec:
    """Any name is a declared task, runnable on this host (run-now's starts are stubbed)."""
    return build_spec(name, "callable", "tests.jobsapp.jobs:succeed", {"timeout": 5}, "test")


@pytest.fixture
def task(db):
    return make_task("nightly")


@pytest.fixture
def no_processes(monkeypatch):
    """Run-now passes every check but starts no process; the lease is still reserved."""
    started = []
    monkeypatch.setattr(
        "cronjobs.supervisor.runner.start_in_background",
        lambda *a, **k: started.append(a) or k.get("run_id"),
    )
    monkeypatch.setattr("cronjobs.actions.registry.get", declared)
    return started


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url", "permission", "caller"), cells())
def test_access_matrix(task, no_processes, method, url, permission, caller):
    hold_lease(task)  # a run under way, for stop to stop
    client = client_for(caller)
    response = post_with_csrf(client, url) if method == "POST" else client.generic(method, url)
    expected = expected_status(caller, permission)
    if expected == 200 and url.endswith("/run/"):
        expected = 409  # the run under way holds the lease
    if expected == 200 and url.endswith("/stop/"):
        expected = 202
    assert response.status_code == expected, response.content
    assert response["Content-Type"].startswith(("application/json", "text/plain"))
    if method == "HEAD":
        assert response.content == b""
    elif expected >= 400:
        assert "error" in response.json()


def hold_lease(task: Task) -> None:
    """The task's lease held by a run on another host, as a running supervisor holds it, with
    its attempt's row (its output read by GET /api/runs/<run_id>/output/)."""
    Lease.objects.create(
        task=task, run_id="f" * 32, host="elsewhere", pid=1, expires_at=ago(minutes=-10)
    )
    make_execution(task, "running", run_id="f" * 32, host="elsewhere", output="so far\n")


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("action", ["enable", "disable"])
def test_refused_writes_change_nothing(task, action, caller):
    before = action == "disable"  # start from the opposite state so a change shows
    Task.objects.filter(pk=task.pk).update(enabled=before)
    response = post_with_csrf(client_for(caller), f"/api/tasks/nightly/{action}/")
    now = Task.objects.get(pk=task.pk).enabled
    assert now is (not before if response.status_code == 200 else before)


def test_unauthenticated_response_names_the_scheme(client, db):
    response = client.get("/api/status/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response["Content-Type"] == "application/json"
    assert "bearer token" in response.json()["error"]


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "Token abc", "Bearer nope"])
def test_malformed_or_wrong_authorization_is_401(client, header):
    response = client.get("/api/status/", headers={"authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid or revoked API token"


@pytest.mark.django_db
def test_session_write_without_csrf_token_is_refused(task):
    response = client_for("staff_writer").post("/api/tasks/nightly/disable/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]
    assert Task.objects.get(pk=task.pk).enabled is True


@pytest.mark.django_db
def test_token_write_needs_no_csrf_token(task):
    response = client_for("read_write").post("/api/tasks/nightly/disable/")
    assert response.status_code == 200
    assert Task.objects.get(pk=task.pk).enabled is False


@pytest.mark.django_db
def test_read_only_token_error_names_the_token(task):
    response = client_for("read_only").post("/api/tasks/nightly/disable/")
    assert response.json() == {"error": "token 'grafana' is read-only"}


@pytest.mark.django_db
def test_wrong_method_is_405_json(task):
    client = client_for("read_write")
    assert client.post("/api/status/").status_code == 405
    response = client.get("/api/tasks/nightly/run/")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "use POST" in response.json()["error"]
    assert client.head("/api/status/").status_code == 200


@pytest.mark.django_db
def test_writes_past_the_rate_limit_are_429_with_retry_after(task, settings):
    settings.CRONJOBS_WRITE_RATE = 2
    client = client_for("read_write")
    statuses = [client.post("/api/tasks/nightly/disable/").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = client.post("/api/tasks/nightly/enable/")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= settings.CRONJOBS_WRITE_WINDOW
    assert "too many changes" in refused.json()["error"]
    assert Task.objects.get(pk=task.pk).enabled is False  # the refused enable changed nothing
    assert client.get("/api/tasks/").status_code == 200  # reads are not limited


@pytest.mark.django_db
def test_run_now_while_pending_or_running_is_409_and_starts_nothing(task, no_processes):
    client = client_for("read_write")
    first = client.post("/api/tasks/nightly/run/")
    assert first.status_code == 202
    assert first.json()["started"] is True
    second = client.post("/api/tasks/nightly/run/")
    assert second.status_code == 409
    assert "already running or about to" in second.json()["error"]
    assert len(no_processes) == 1


@pytest.mark.django_db
def test_csrf_failures_do_not_use_up_the_write_quota(task, settings):
    """A forged cross-site POST is refused before it is counted: the user's own writes still
    go through afterwards."""
    settings.CRONJOBS_WRITE_RATE = 2
    client = client_for("staff_writer")
    for _ in range(5):
        forged = client.post("/api/tasks/nightly/disable/")
        assert forged.status_code == 403 and "CSRF" in forged.json()["error"]
    assert post_with_csrf(client, "/api/tasks/nightly/disable/").status_code == 200
    assert post_with_csrf(client, "/api/tasks/nightly/enable/").status_code == 200
    assert post_with_csrf(client, "/api/tasks/nightly/disable/").status_code == 429


@pytest.mark.django_db
def test_status_needs_the_alert_and_task_view_permissions_too():
    """The status body shows task health and alert messages: view_execution alone is not
    enough."""
    from tests.helpers import make_user

    shown = ("view_execution", "view_task", "view_alert")
    for lacking in shown:
        client = Client()
        client.force_login(make_user(f"no_{lacking}", *(set(shown) - {lacking})))
        refused = client.get("/api/status/")
        assert refused.status_code == 403
        assert f"cronjobs.{lacking}" in refused.json()["error"]
