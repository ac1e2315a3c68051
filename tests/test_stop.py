"""Stopping a running task from a second process, through the database: `manage.py stopjob`,
the API and the admin all call cronjobs.actions.stop; the supervisor sees the request on its
lease beat, sends SIGTERM to the job's group, SIGKILL after the grace, and records `cancelled`."""

from __future__ import annotations

import subprocess
import time

import pytest
from django.contrib.admin.models import LogEntry
from django.test import override_settings

from cronjobs.models import Alert, CircuitState, Execution, Lease
from tests.helpers import alive, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = """
[tasks.stubborn]
command = [
    "sh",
    "-c",
    "echo $$ > $FC_TEST_DIR/job.pid; trap '' TERM; while true; do sleep 0.1; done",
]
pass_env = ["FC_TEST_DIR"]
timeout = 120
max_attempts = 3
retry_delay = 0

[tasks.retrying]
command = ["sh", "-c", "exit 5"]
timeout = 120
max_attempts = 3
retry_delay = 60

[tasks.polite]
command = ["sh", "-c", "echo $$ > $FC_TEST_DIR/job.pid; exec sleep 120"]
pass_env = ["FC_TEST_DIR"]
timeout = 120
max_attempts = 3
retry_delay = 0
"""


@pytest.fixture
def tasks_env(tmp_path, job_dir):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(TASKS)
    return {"CRONJOBS_TASKS_FILE": str(tasks), "CRONJOBS_LEASE_BEAT": "1"}


def start(manage, tasks_env, name):
    """`runjob <name>` in the background, once its job is running (its pid file written)."""
    runjob = subprocess.Popen(
        manage.argv("runjob", name, "--trigger", "cron"),
        env=manage.env(tasks_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: Execution.objects.filter(task__name=name, status="running").exists())
    return runjob


def job_pid(job_dir) -> int:
    path = job_dir / "job.pid"
    return int(wait_for(lambda: path.exists() and path.read_text().strip()))


@pytest.mark.parametrize(("name", "within"), [("polite", 3.0), ("stubborn", 1 + 1 + 3.0)])
def test_stopjob_from_a_second_process_cancels_the_run_without_retry(
    manage, tasks_env, job_dir, name, within
):
    runjob = start(manage, tasks_env, name)
    pid = job_pid(job_dir)
    asked = time.monotonic()
    stop = manage("stopjob", name, env_extra=tasks_env)
    assert stop.returncode == 0, stop.stderr
    assert f"{name}: stop requested for run" in stop.stdout
    wait_for(lambda: not alive(pid), timeout=15, what=f"the {name} job to be gone")
    # beat (1 s) + grace (1 s, tests/settings.py) for the one ignoring SIGTERM
    assert time.monotonic() - asked < within
    assert runjob.wait(timeout=15) == 1
    (row,) = Execution.objects.filter(task__name=name)  # one attempt: no retry
    assert row.status == "cancelled"
    assert row.stopped_by == "manage.py stopjob"
    assert row.error == "stopped by manage.py stopjob"
    assert not CircuitState.objects.filter(task__name=name, failure_count__gt=0).exists()
    assert not Alert.objects.filter(task__name=name).exists()  # not a failure
    assert Lease.objects.get(task__name=name).run_id == ""
    entry = LogEntry.objects.get(object_repr=name)
    assert entry.change_message.startswith(f"Stop requested (run {row.run_id})")


def test_stopjob_when_nothing_runs_exits_3_and_changes_nothing(manage, tasks_env):
    manage("synctasks", env_extra=tasks_env)
    stop = manage("stopjob", "polite", env_extra=tasks_env)
    assert stop.returncode == 3
    assert "is not running: nothing to stop" in stop.stderr
    assert not LogEntry.objects.exists()
    assert manage("stopjob", "nobody", env_extra=tasks_env).returncode == 2


def test_running_endpoint_shows_the_run_with_live_memory_and_the_stop_request(
    manage, tasks_env, job_dir, client, django_user_model
):
    from tests.helpers import make_user

    runjob = start(manage, tasks_env, "polite")
    job_pid(job_dir)
    client.force_login(make_user("watcher", "view_execution"))
    body = client.get("/api/running/").json()
    (run,) = body["running"]
    assert run["task"] == "polite" and run["attempt"] == 1 and run["max_attempts"] == 3
    assert run["timeout_seconds"] == 120 and run["pid"] == runjob.pid
    assert run["memory_source"] == "live" and run["memory_bytes"] > 0
    assert run["stop_requested_by"] is None
    # Seen from another web host: the peak its supervisor wrote on the running row.
    with override_settings(CRONJOBS_HOST="another-web-host"):
        seen = wait_for(lambda: client.get("/api/running/").json()["running"][0]["memory_bytes"])
        assert client.get("/api/running/").json()["running"][0]["memory_source"] == "last written"
    assert seen > 0
    client.force_login(make_user("stopper", "change_task", "view_task"))
    response = client.post("/api/tasks/polite/stop/")
    assert response.status_code == 202, response.content
    assert response.json()["run_id"] == run["run_id"]
    assert runjob.wait(timeout=15) == 1
    assert Execution.objects.get(task__name="polite").stopped_by == "stopper"
    again = client.post("/api/tasks/polite/stop/")
    assert again.status_code == 409 and "not running" in again.json()["error"]


def test_a_stop_during_the_retry_delay_ends_the_run_without_more_attempts(manage, tasks_env):
    runjob = subprocess.Popen(
        manage.argv("runjob", "retrying"),
        env=manage.env(tasks_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: Execution.objects.filter(task__name="retrying", status="failed").exists())
    assert manage("stopjob", "retrying", env_extra=tasks_env).returncode == 0
    assert runjob.wait(timeout=20) == 1  # not the 60 s delay and two more attempts
    (row,) = Execution.objects.filter(task__name="retrying")
    assert row.status == "failed"  # the attempt that ran failed; the stop prevented the rest
    assert "retrying: cancelled" in runjob.stderr.read()  # the run, not its last attempt
    # An operator ended the run: no failed alert pages anyone for it.
    assert not Alert.objects.filter(task__name="retrying", kind="failed").exists()
