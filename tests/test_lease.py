"""Overlap prevention across processes and hosts (cronjobs/lease.py)."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime

import pytest

from cronjobs.models import Alert, Execution, Lease, Task
from cronjobs.supervisor.lease import TaskLease, reap_expired
from cronjobs.supervisor.registry import build_spec
from cronjobs.supervisor.sync import sync_task

pytestmark = pytest.mark.django_db(transaction=True)

Status = Execution.Status
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def _task(name: str = "leased") -> Task:
    return sync_task(build_spec(name, "command", ("true",), {"timeout": 5}, "test"))


def test_second_holder_is_refused_until_release():
    task = _task()
    first, second = TaskLease(task, "a" * 32, "host-a"), TaskLease(task, "b" * 32, "host-b")
    assert first.acquire().ok
    refused = second.acquire()
    assert not refused.ok
    assert refused.holder.run_id == "a" * 32
    assert refused.holder.host == "host-a"
    first.release()
    assert second.acquire().ok


def test_expired_lease_is_taken_over_and_its_run_abandoned():
    task = _task()
    Execution.objects.create(run_id="d" * 32, task=task, status=Status.RUNNING, host="gone")
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
    task = _task()
    Execution.objects.create(run_id="f" * 32, task=task, status=Status.RUNNING, host="gone")
    Lease.objects.create(task=task, run_id="f" * 32, host="gone", pid=1,
                         expires_at=LONG_AGO)  # fmt: skip
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
    tasks.write_text('[tasks.sleeper]\ncommand = ["sh", "-c", "sleep ${FC_SLEEP:-0}"]\n'
                     "timeout = 600\nmax_attempts = 1\n")  # fmt: skip

    def kill_running(env: dict) -> None:
        first = subprocess.Popen(manage.argv("runjob", "sleeper"),
                                 env=manage.env({**env, "FC_SLEEP": "600"}))  # fmt: skip
        deadline = time.monotonic() + 30
        while not Execution.objects.filter(status=Status.RUNNING).exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

    kill_running.env = {"CRONJOBS_TASKS_FILE": str(tasks)}
    return kill_running


def test_sigkilled_run_is_taken_over_after_its_lease_expires(manage, sleeper):
    env = {**sleeper.env, "CRONJOBS_LEASE_TTL": "3"}
    sleeper({**env, "CRONJOBS_HOST": "host-a"})
    killed_at = time.monotonic()
    other_host = {**env, "CRONJOBS_HOST": "host-b"}
    # Another host cannot know the holder died: it skips until the lease expires.
    assert manage("runjob", "sleeper", env_extra=other_host).returncode == 3
    while (result := manage("runjob", "sleeper", env_extra=other_host)).returncode == 3:
        assert time.monotonic() - killed_at < 30
    assert result.returncode == 0, result.stderr
    assert 2 < time.monotonic() - killed_at < 30
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
