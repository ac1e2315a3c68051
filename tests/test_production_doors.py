"""The production doors, through a real gunicorn on a loopback port (tests/live_gunicorn.py):
the access matrix of tests/test_api_auth.py for every URL and caller, run-now under a flood,
every bad input as a JSON 4xx, and `check --deploy` with the documented production
environment. Runs on SQLite and on MariaDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil
import pytest
from django.core.management import call_command
from django.test import Client

from cronjobs import tokens
from cronjobs.models import Execution, Task
from tests.api_fixtures import READ_PERMS, WRITE_PERMS, lose_owner
from tests.helpers import ROOT, make_execution, make_task, make_user, wait_for
from tests.live_gunicorn import gunicorn
from tests.test_api_auth import CALLERS, ENDPOINTS, expected_status

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def call(
    method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> Answer:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers), exc.read())


def _session_headers(username: str, perms: tuple[str, ...], staff: bool = True) -> dict:
    client = Client()
    client.force_login(make_user(username, *perms, staff=staff))
    session = client.cookies["sessionid"].value
    return {"Cookie": f"sessionid={session}; csrftoken={'c' * 32}", "X-CSRFToken": "c" * 32}


def _token_headers(name: str, read_only: bool, owner_perms=WRITE_PERMS, owner: str = "") -> dict:
    user = None
    if owner_perms is not None:
        user = make_user(f"{name}-owner", *owner_perms)
    _, secret = tokens.create_token(
        name, read_only=read_only, created_by=user, from_command_line=user is None
    )
    if user is not None:
        lose_owner(user, owner)
    if name == "old":
        tokens.revoke(name)
    return {"Authorization": f"Bearer {secret}"}


def caller_headers() -> dict[str, dict[str, str]]:
    """Request headers for every caller of tests/api_fixtures.py, as real HTTP clients."""
    return {
        "anonymous": {},
        "non_staff": _session_headers("shopper", (), staff=False),
        "staff": _session_headers("nobody", ()),
        "viewer": _session_headers("viewer", READ_PERMS),
        "staff_writer": _session_headers("operator", WRITE_PERMS),
        "read_only": _token_headers("grafana", read_only=True),
        "read_write": _token_headers("deploy", read_only=False),
        "orphan_token": _token_headers("cli", read_only=False, owner_perms=None),
        "deactivated_owner": _token_headers("gone", read_only=False, owner="deactivated"),
        "deleted_owner": _token_headers("deleted", read_only=False, owner="deleted"),
        "demoted_owner": _token_headers("demoted", read_only=False, owner="demoted"),
        "revoked": _token_headers("old", read_only=False),
    }


def test_access_matrix_through_gunicorn(log_dir):
    task = make_task("nightly")  # not declared on this host: an allowed run-now is refused (409)
    make_execution(task, "running", run_id="f" * 32, output="so far\n")  # its output is read
    headers = caller_headers()
    assert set(headers) == set(CALLERS)
    wrong = []
    with gunicorn(log_dir) as base:
        for method, url, permission in ENDPOINTS:
            for caller in CALLERS:
                Task.objects.filter(name="nightly").update(enabled=True)
                answer = call(method, base + url, headers[caller])
                expected = expected_status(caller, permission)
                if expected == 200 and url.endswith(("/run/", "/stop/")):
                    expected = 409  # not declared here / not running
                if url.endswith("/enable/") and expected == 200:
                    pass  # already enabled: still a 200 that changes nothing
                json_error = method == "HEAD" or answer.status < 400 or "error" in answer.json()
                if answer.status != expected or not json_error:
                    wrong.append((method, url, caller, answer.status, expected))
    assert wrong == []


# A run that lasts until it is stopped: however slowly a loaded machine answers the flood,
# the one run it started still holds the lease when the last answer comes back.
HELD_TASK = """
[tasks.held]
command = ["sh", "-c", "exec sleep 120"]
timeout = 180
max_attempts = 1
"""


def test_run_now_flood_starts_exactly_one_run(log_dir, tmp_path, manage):
    tasks_file = tmp_path / "tasks.toml"
    tasks_file.write_text(HELD_TASK)
    env = {"CRONJOBS_TASKS_FILE": str(tasks_file), "CRONJOBS_LEASE_BEAT": "1"}
    assert manage("synctasks", env_extra=env).returncode == 0
    _, secret = tokens.create_token(
        "deploy", read_only=False, created_by=make_user("ops", *WRITE_PERMS)
    )
    headers = {"Authorization": f"Bearer {secret}"}
    with gunicorn(log_dir, workers=4, **env) as base:
        url = f"{base}/api/tasks/held/run/"
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda _: call("POST", url, headers), range(20)))
        runjobs = [p for p in psutil.process_iter(["cmdline", "ppid"]) if _is_held_run(p, log_dir)]
        # A supervisor forks its job's launcher, which shows the same command line for a moment.
        pids = {p.pid for p in runjobs}
        supervisors = [p for p in runjobs if p.info["ppid"] not in pids]
        statuses = sorted(a.status for a in answers)
        assert statuses.count(202) == 1, statuses
        assert set(statuses) <= {202, 409, 429}, statuses
        assert len(supervisors) <= 1, [p.info for p in runjobs]
        started = next(a.json() for a in answers if a.status == 202)
        assert started["started"] is True
        for answer in answers:
            if answer.status == 429:
                assert int(answer.headers["Retry-After"]) >= 1
            if answer.status != 202:
                assert "error" in answer.json()
        wait_for(
            lambda: Execution.objects.filter(run_id=started["run_id"], status="running"),
            timeout=60,
            what="the one run to start",
        )
        stopped = manage("stopjob", "held", env_extra=env)
        assert stopped.returncode == 0, stopped.stderr
        wait_for(
            lambda: Execution.objects.filter(run_id=started["run_id"], status="cancelled"),
            timeout=60,
            what="the one run to be stopped",
        )
    assert Execution.objects.filter(task__name="held").count() == 1


def _is_held_run(process: psutil.Process, log_dir) -> bool:
    """A `runjob held` started by this test's gunicorn (its LOG_DIR is this test's), not one
    of another suite running on the same machine."""
    cmdline = process.info["cmdline"] or []
    if "runjob" not in cmdline or "held" not in cmdline:
        return False
    try:
        return process.environ().get("LOG_DIR") == str(log_dir)
    except psutil.Error:  # it ended (or is not ours to read) since it was listed
        return False


# (method, path): each must answer a JSON 4xx, never a 500 or an HTML page.
BAD_INPUTS = [
    ("GET", "/api/runs/nope/output/"),
    ("GET", "/api/runs/nope/output/?offset=-1"),
    ("GET", "/api/runs/nope/output/?offset=abc"),
    ("GET", "/api/runs/nope/output/?offset=" + "9" * 5000),
    ("GET", "/api/runs/nope/output/?offset=9007199254740992"),
    ("GET", "/api/runs/nope/output/?attempt=x"),
    ("GET", "/api/tasks/HEARTBEAT/"),
    ("GET", "/api/tasks/Heartbeat/"),
    ("GET", "/api/tasks/heartbeat%20/"),
    ("POST", "/api/tasks/HEARTBEAT/disable/"),
    ("POST", "/api/tasks/heartbeat%20/run/"),
    ("GET", "/api/metrics/?hours=9999&hours=24"),
    ("GET", "/api/metrics/?hours=24&hours=9999"),
    ("GET", "/api/metrics/?hours=%EF%BC%92%EF%BC%94"),  # fullwidth 24
    ("GET", "/api/metrics/?hours=%D9%A2%D9%A4"),  # Arabic-Indic 24
    ("GET", "/api/metrics/?hours=+24"),
    ("GET", "/api/metrics/?hours=%2024"),
    ("GET", "/api/metrics/?hours=1_0"),
    ("GET", "/api/metrics/?hours=99999999999999999999999"),
    ("GET", "/api/metrics/?" + "x&" * 1001),  # more than DATA_UPLOAD_MAX_NUMBER_FIELDS
    ("GET", "/api/logs/?lines=%F0%9F%92%A5"),
    ("GET", "/api/status/?%ZZ=1"),
    ("GET", "/api/tasks/%ZZ/"),
    ("GET", "/api/tasks/" + "x" * 500 + "/"),
    ("GET", "/api/tasks/nightly/run/"),
    ("PUT", "/api/status/"),
    ("GET", "/api/unknown/endpoint/"),
    ("GET", "/metrics?hours=24"),
    ("GET", "/api/metrics/?hours=" + "9" * 5000),  # int() refuses over 4,300 digits
    ("GET", "/api/logs/?lines=" + "9" * 5000),
    ("GET", "/api/logs/?lines=-" + "9" * 5000),
    ("POST", "/api/tasks/nightly/snooze/?minutes=" + "9" * 5000),
]


def test_every_bad_input_is_a_json_4xx_through_gunicorn(log_dir):
    call_command("synctasks", verbosity=0)
    make_task("nightly")
    owner = make_user("ops", *WRITE_PERMS)
    _, secret = tokens.create_token("deploy", read_only=False, created_by=owner)
    headers = {"Authorization": f"Bearer {secret}"}
    wrong = []
    with gunicorn(log_dir, CRONJOBS_WRITE_RATE="1000") as base:
        for method, path in BAD_INPUTS:
            answer = call(method, base + path, headers)
            is_json = answer.headers.get("Content-Type", "").startswith("application/json")
            if not (400 <= answer.status < 500 and is_json and "error" in answer.json()):
                wrong.append((method, path, answer.status, answer.body[:200]))
        good = [
            call("GET", f"{base}/api/tasks", headers).status,
            call("HEAD", f"{base}/api/status/", headers).status,
            call("GET", f"{base}/api/metrics/?hours=24", headers).status,
        ]
    assert wrong == []
    assert good == [200, 200, 200]
    assert Task.objects.get(name="heartbeat").enabled is True  # not disabled as "HEARTBEAT"


# JSON bodies of a snooze: each a JSON 400 (and the plain body after them works).
BAD_BODIES = [
    b'{"minutes": ' + b"9" * 5000 + b"}",
    b'{"minutes": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",  # too deep for the parser
    b'{"minutes": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    b'{"minutes": 5, "pad": "' + b"x" * 100_000 + b'"}',
]


def test_absurd_json_bodies_are_a_json_400_through_gunicorn(log_dir):
    make_task("nightly")
    _, secret = tokens.create_token(
        "deploy", read_only=False, created_by=make_user("ops", *WRITE_PERMS)
    )
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    with gunicorn(log_dir, workers=1, CRONJOBS_WRITE_RATE="1000") as base:
        url = f"{base}/api/tasks/nightly/snooze/"
        answers = [call("POST", url, headers, body) for body in BAD_BODIES]
        fine = call("POST", url, headers, b'{"minutes": 5}')
    assert [(a.status, "error" in a.json()) for a in answers] == [(400, True)] * len(BAD_BODIES)
    assert fine.status == 200, fine.body


def test_execution_list_clamps_an_absurd_page(admin_client):
    for page in ("99999999999999999999", "9" * 5000, "-5", "abc", "٣"):
        response = admin_client.get(f"/admin/cronjobs/execution/?p={page}")
        assert response.status_code in (200, 302), page


def test_every_admin_page_answers_absurd_ids_and_pages_without_an_error(admin_client):
    """Every registered model's list with a 5,000-digit or non-numeric page, and its object
    pages with ids that name nothing: a page, a redirect, a 404 or a refusal, never a 500."""
    from django.contrib import admin

    make_task("nightly")
    big = "9" * 5000
    wrong = []
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        urls = [f"{base}?p={big}", f"{base}?p=abc", f"{base}?o={big}", f"{base}?q={big}"]
        for object_id in ("abc", big, "-1", "1.5", "%00"):
            urls += [f"{base}{object_id}/change/", f"{base}{object_id}/history/"]
        for url in urls:
            status = admin_client.get(url).status_code
            if status not in (200, 302, 403, 404):
                wrong.append((url[:80], status))
    assert wrong == []
    # The control room's own pages answer 404 for any id that names nothing.
    for model in ("task", "execution", "alert", "apitoken"):
        for object_id in ("abc", big, "1.5", "999999999"):
            for page in ("change", "history", "delete"):
                url = f"/admin/cronjobs/{model}/{object_id}/{page}/"
                assert admin_client.get(url).status_code == 404, url


PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "p" * 20 + "r0duct10n-k3y-with-enough-var1ety-&-length!",
    "ALLOWED_HOSTS": "cron.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://cron.example.com",
    "SECURE_PROXY_SSL_HEADER": "1",
    "SECURE_SSL_REDIRECT": "1",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    environ.update(DJANGO_SETTINGS_MODULE="flagged_cron_project.settings", **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_production_environment():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_short_secret_key_stops_start_up():
    result = _manage("check", **{**PRODUCTION_ENV, "SECRET_KEY": "short-key"})
    assert result.returncode != 0
    assert "SECRET_KEY is 9 characters; use at least 50" in result.stderr


def test_a_database_url_that_does_not_parse_hides_its_password():
    url = "mysql://root:hunter2-secret@db.example.com:notaport/flagged"
    result = _manage("check", **{**PRODUCTION_ENV, "DATABASE_URL": url})
    assert result.returncode != 0
    assert "cannot be parsed" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_the_debug_page_settings_hide_database_and_token_credentials(settings):
    from django.views.debug import SafeExceptionReporterFilter

    # A copy: the connection shares the original dict, and a later test would log in with it.
    settings.DATABASES = {"default": {**settings.DATABASES["default"], "PASSWORD": "hunter2"}}
    safe = SafeExceptionReporterFilter().get_safe_settings()
    assert "hunter2" not in repr(safe)
    assert "DATABASE_URL" not in safe  # only DATABASES, whose PASSWORD is masked
    assert "hunter2" not in SafeExceptionReporterFilter().cleanse_setting(
        "HTTP_AUTHORIZATION", "Bearer hunter2"
    )


def test_pages_carry_the_content_security_policy_and_sessions_last_twelve_hours(
    log_dir, django_user_model
):
    from tests.test_login_lockout import Browser

    django_user_model.objects.create_superuser("operator", "op@example.com", "doors-pw-1")
    with gunicorn(log_dir, workers=1) as base:
        login = call("GET", f"{base}/admin/login/")
        api = call("GET", f"{base}/api/status/")
        browser = Browser(base, "127.0.0.1")
        started = time.time()
        assert browser.log_in("operator", "doors-pw-1") == 302
        page = browser._open(f"{base}/admin/", {})
    for answer in (login, api, page):
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.status == 200
    (session,) = [cookie for cookie in browser.cookies if cookie.name == "sessionid"]
    assert abs(session.expires - started - 12 * 3600) < 120
