"""Overlap prevention across processes and hosts (cronjobs/supervisor/lease.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from django.db.models.functions import Now

from cronjobs.models import Alert, Execution, Lease
from cronjobs.supervisor.lease import TaskLease, reap_expired
from tests.helpers import ROOT, make_execution, make_task, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

Status = Execution.Status
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def test_second_holder_is_refused_until_release():
    task = make_task("leased")
    first, second = TaskLease(task, "a" * 32, "host-a"), TaskLease(task, "b" * 32, "host-b")
    assert first.acquire().ok
    refused = second.acquire()
    assert not refused.ok
    assert refused.holder.run_id == "a" * 32
    assert refused.holder.host == "host-a"
    first.release()
    assert second.acquire().ok


def test_expired_lease_is_taken_over_and_its_run_abandoned():
    task = make_task("leased")
    make_execution(task, Status.RUNNING, run_id="d" * 32, host="gone")
    Lease.objects.create(task=task, run_id="d" * 32, host="gone", pid=1)  # expires_at NULL
    Lease.objects.filter(task=task).update(expires_at=LONG_AGO)
    taken = TaskLease(task, "e" * 32, "host-b").acquire()
    assert taken.ok
    assert taken.abandoned_run == "d" * 32
    dead = Execution.objects.get(run_id="d" * 32)
    assert dead.status == Status.ABANDONED
    assert "stopped renewing its lease" in dead.error
    assert Alert.objects.get(task=task, kind="abandoned").state == "open"


def test_watchdog_reaps_expired_leases_without_a_new_invocation():
    task = make_task("leased")
    make_execution(task, Status.RUNNING, run_id="f" * 32, host="gone")
    Lease.objects.create(task=task, run_id="f" * 32, host="gone", pid=1, expires_at=LONG_AGO)
    assert reap_expired() == 1
    assert Execution.objects.get(run_id="f" * 32).status == Status.ABANDONED
    assert Lease.objects.get(task=task).run_id == ""


def test_twenty_concurrent_invocations_run_exactly_once(manage):
    manage("synctasks")
    procs = [
        subprocess.Popen(
            manage.argv("runjob", "test_hold", "--trigger", "cron"),
            env=manage.env(
                {"CRONJOBS_HOST": "host-a" if i % 2 else "host-b", "FC_EXPECTED_SKIPS": "19"}
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(20)
    ]
    codes = sorted(proc.wait(timeout=240) for proc in procs)
    assert codes == [0] + [3] * 19
    rows = Execution.objects.filter(task__name="test_hold")
    assert rows.count() == 20  # nothing lost
    assert rows.values("run_id").distinct().count() == 20
    assert rows.filter(status=Status.SUCCEEDED).count() == 1
    skips = rows.filter(status=Status.SKIPPED, skip_reason="overlap")
    assert skips.count() == 19
    assert {row.host for row in rows} == {"host-a", "host-b"}
    assert "holds the lease" in skips.first().error


@pytest.fixture
def sleeper(manage, tmp_path):
    """A command task `sleeper`; `sleeper.kill_running(env)` starts it for ten minutes under
    `env`, waits until its attempt is recorded as running, and SIGKILLs the supervisor."""
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(
        '[tasks.sleeper]\ncommand = ["sh", "-c", "sleep ${FC_SLEEP:-0}"]\n'
        'timeout = 600\nmax_attempts = 1\npass_env = ["FC_SLEEP"]\n'
    )

    def kill_running(env: dict) -> None:
        first = subprocess.Popen(
            manage.argv("runjob", "sleeper"), env=manage.env({**env, "FC_SLEEP": "600"})
        )
        wait_for(lambda: Execution.objects.filter(status=Status.RUNNING).exists())
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

    kill_running.env = {"CRONJOBS_TASKS_FILE": str(tasks)}
    return kill_running


# `manage.py <args>`, except that it first loads Django and the task declarations, touches the
# file named by its first argument and waits for a line on stdin.
STANDBY = """
import sys
from pathlib import Path

import django

django.setup()
from django.core.management import execute_from_command_line
from cronjobs.management.commands import runjob  # loaded now, not after the go
from cronjobs.supervisor.registry import registry

registry.load()
Path(sys.argv[1]).touch()
sys.stdin.readline()
execute_from_command_line(["manage.py", *sys.argv[2:]])
"""


@pytest.fixture
def standby(manage, tmp_path):
    """`standby(*args, env_extra=...)` starts `manage.py *args` in a fresh interpreter and
    returns it once Django is loaded; `proc.communicate("go")` then runs the command at once.
    A new interpreter can take seconds to start on a loaded machine, so a test that must act
    within seconds of an event starts it before the event."""
    started: list[subprocess.Popen] = []

    def start(*args: str, env_extra: dict | None = None) -> subprocess.Popen:
        ready = tmp_path / f"standby-{len(started)}.ready"
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        argv = [sys.executable, "-c", STANDBY, str(ready), *args]
        proc = subprocess.Popen(argv, env=manage.env(env_extra), cwd=ROOT, text=True, **pipes)
        started.append(proc)
        wait_for(lambda: ready.exists() or proc.poll() is not None, timeout=120)
        assert proc.poll() is None, proc.communicate()
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkilled_run_is_taken_over_after_its_lease_expires(manage, sleeper, standby):
    env = {**sleeper.env, "CRONJOBS_LEASE_TTL": "3"}
    other_host = {**env, "CRONJOBS_HOST": "host-b"}
    # Host b's first look must come within the 3 s, however long an interpreter takes to start.
    first_look = standby("runjob", "sleeper", env_extra=other_host)
    sleeper({**env, "CRONJOBS_HOST": "host-a"})
    # Another host cannot know the holder died: it skips until the lease expires.
    _, stderr = first_look.communicate("go", timeout=60)
    assert first_look.returncode == 3, stderr
    assert Execution.objects.get(host="host-b").skip_reason == "overlap"
    expired = Lease.objects.filter(task__name="sleeper", host="host-a", expires_at__lt=Now())
    wait_for(expired.exists, timeout=30, what="host-a's lease to expire by the database clock")
    result = manage("runjob", "sleeper", env_extra=other_host)
    assert result.returncode == 0, result.stderr
    dead = Execution.objects.get(host="host-a")
    assert dead.status == Status.ABANDONED
    assert Execution.objects.filter(host="host-b", status=Status.SUCCEEDED).count() == 1
    assert Alert.objects.filter(kind="abandoned", state="open").count() == 1


def test_same_host_takes_over_at_once_when_the_holder_process_is_gone(manage, sleeper):
    env = {**sleeper.env, "CRONJOBS_HOST": "host-a"}
    sleeper(env)
    result = manage("runjob", "sleeper", env_extra=env)
    assert result.returncode == 0, result.stderr
    assert Execution.objects.filter(status=Status.ABANDONED).count() == 1
