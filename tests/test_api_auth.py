"""Who may call each API endpoint and /metrics: the access matrix of docs/api.md."""

from __future__ import annotations

import pytest

from cronjobs.models import Task
from tests.api_fixtures import CALLERS, client_for, post_with_csrf
from tests.helpers import make_task

READS = [
    "/api/tasks/",
    "/api/tasks/nightly/",
    "/api/status/",
    "/api/metrics/",
    "/api/logs/",
    "/metrics",
]

READ_EXPECTED = {
    "anonymous": 401,
    "non_staff": 403,
    "staff": 200,
    "staff_writer": 200,
    "read_only": 200,
    "read_write": 200,
    "revoked": 401,
}
WRITE_EXPECTED = {
    "anonymous": 401,
    "non_staff": 403,
    "staff": 403,
    "staff_writer": 200,
    "read_only": 403,
    "read_write": 200,
    "revoked": 401,
}


@pytest.fixture
def task(db):
    return make_task("nightly")


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("url", READS)
def test_read_access(task, url, caller):
    response = client_for(caller).get(url)
    assert response.status_code == READ_EXPECTED[caller]
    if response.status_code != 200:
        assert "error" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("action", ["enable", "disable"])
def test_write_access(task, action, caller):
    before = action == "disable"  # start from the opposite state so a change shows
    Task.objects.filter(pk=task.pk).update(enabled=before)
    response = post_with_csrf(client_for(caller), f"/api/tasks/nightly/{action}/")
    assert response.status_code == WRITE_EXPECTED[caller], response.content
    now = Task.objects.get(pk=task.pk).enabled
    if response.status_code == 200:
        assert now is not before
    else:
        assert "error" in response.json()
        assert now is before


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_run_now_access(task, caller, monkeypatch):
    started = []
    monkeypatch.setattr(
        "cronjobs.supervisor.runner.start_in_background", lambda *a: started.append(a) or "r1"
    )
    monkeypatch.setattr("cronjobs.actions.registry.get", lambda name: object())
    response = post_with_csrf(client_for(caller), "/api/tasks/nightly/run/")
    expected = 202 if WRITE_EXPECTED[caller] == 200 else WRITE_EXPECTED[caller]
    assert response.status_code == expected
    assert started == ([("nightly", "api")] if expected == 202 else [])


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


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/api/tasks/%ZZ/",
        "/api/tasks/" + "x" * 500 + "/",
        "/api/tasks/nightly/run/",  # GET on a POST endpoint
        "/api/metrics/?hours=%00",
        "/api/metrics/?hours=1e3",
        "/api/metrics/?hours=24&hours=abc",
        "/api/logs/?lines=%F0%9F%92%A5",
        "/api/status/?%ZZ=1",
        "/api/unknown/endpoint/",
        "/metrics?hours=24",
    ],
)
def test_odd_requests_get_a_json_error_never_a_500(task, url):
    response = client_for("read_write").get(url)
    assert 400 <= response.status_code < 500
    assert "error" in response.json()
