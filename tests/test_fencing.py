"""Fencing (cronjobs/supervisor/lease.py, the runner's monitor beat): a supervisor never lets
its job outlive its lease. Real runjob processes as two "hosts" (CRONJOBS_HOST a and b), a job
that appends its host and a timestamp to one file every 50 ms, and, for the partition, a TCP
proxy between host a and MariaDB that the test freezes with SIGSTOP."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from django.db import connection

from cronjobs.models import Execution, Lease
from tests.helpers import ROOT, alive, database_url, wait_for
from tests.stamper import assert_never_two_at_once, daily_log, declare, job_pid, stamped_by, start

pytestmark = pytest.mark.django_db(transaction=True)

Status = Execution.Status


@pytest.fixture
def tasks_file(tmp_path, job_dir):
    """`tasks_file(overlap=..., on_lease_lost=...)`: the environment declaring `stamper`."""
    return lambda **policies: declare(tmp_path, **policies)


def test_holder_whose_lease_was_taken_over_stops_at_once(manage, tasks_file, job_dir):
    env = {**tasks_file(), "CRONJOBS_HOST": "a"}
    runjob = start(manage, env)
    pid = job_pid(job_dir, "a")
    wait_for(lambda: stamped_by(job_dir, "a"))
    # Another host took the lease over (its expiry passed by the database's clock, say).
    Lease.objects.filter(task__name="stamper").update(run_id="f" * 32, host="b", pid=None)
    taken_at = time.time()
    _, stderr = runjob.communicate(timeout=60)
    assert runjob.returncode == 1, stderr
    assert not alive(pid)
    # On the next beat (1 s), then SIGTERM: sh ends at once (5 s: a loaded machine's slack).
    assert max(stamped_by(job_dir, "a")) < taken_at + 5
    attempt = Execution.objects.get(task__name="stamper")  # no retry without the lease
    assert attempt.status == Status.FAILED
    assert attempt.error == "lease lost: taken over by run ffffffff on b"
    assert attempt.signal == signal.SIGTERM
    # It did not release what is no longer its lease.
    assert Lease.objects.get(task__name="stamper").run_id == "f" * 32


def test_on_lease_lost_continue_lets_the_job_run_on_and_says_so(
    manage, tasks_file, job_dir, log_dir
):
    env = {**tasks_file(on_lease_lost="continue"), "CRONJOBS_HOST": "a", "FC_RUN_FOR": "4"}
    runjob = start(manage, env)
    wait_for(lambda: stamped_by(job_dir, "a"))
    Lease.objects.filter(task__name="stamper").update(run_id="f" * 32, host="b", pid=None)
    _, stderr = runjob.communicate(timeout=60)
    assert runjob.returncode == 0, stderr
    attempt = Execution.objects.get(task__name="stamper")
    assert attempt.status == Status.SUCCEEDED
    daily = daily_log(log_dir)
    assert "lease lost: taken over by run ffffffff on b; the job goes on" in daily
    assert "(on_lease_lost = continue)" in daily


def test_a_renewal_stuck_on_a_locked_database_stops_the_job_before_the_lease_could_lapse(
    manage, tasks_file, job_dir
):
    """SQLite's stand-in for a partition: another process holds the write lock, so each
    renewal waits (up to the 30 s busy timeout); the monitor must not wait with it."""
    if connection.vendor != "sqlite":
        pytest.skip("the MariaDB partition is test_partitioned_host_stops_its_job_...")
    env = {**tasks_file(), "CRONJOBS_HOST": "a", "CRONJOBS_LEASE_TTL": "6"}
    runjob = start(manage, env)
    pid = job_pid(job_dir, "a")
    wait_for(lambda: stamped_by(job_dir, "a"))
    renewed = Lease.objects.get(task__name="stamper").expires_at
    wait_for(lambda: Lease.objects.get(task__name="stamper").expires_at != renewed)
    lock = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the write lock, held
    locked_at = time.time()
    try:
        wait_for(lambda: not alive(pid), timeout=20, what="the job to be stopped")
        lapses = Lease.objects.get(task__name="stamper").expires_at.timestamp()
        assert max(stamped_by(job_dir, "a")) < lapses  # dead before anyone could take over
        assert max(stamped_by(job_dir, "a")) < locked_at + 6  # the last renewal came before
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    _, stderr = runjob.communicate(timeout=60)
    assert runjob.returncode == 1, stderr
    attempt = Execution.objects.get(task__name="stamper")
    assert attempt.status == Status.FAILED
    assert attempt.error.startswith("lease lost: not renewed for ")
    assert "a renewal unanswered for" in attempt.error
    assert "CRONJOBS_LEASE_TTL=6" in attempt.error


@pytest.fixture
def partition(tmp_path):
    """A TCP proxy to the test's MariaDB on a free loopback port (tests/partition_proxy.py):
    `partition.url` reaches the test database through it; SIGSTOP freezes it."""
    s = connection.settings_dict
    host, port = s["HOST"] or "127.0.0.1", str(s["PORT"] or 3306)
    script = str(ROOT / "tests" / "partition_proxy.py")
    proxy = subprocess.Popen(
        [sys.executable, script, host, port], stdout=subprocess.PIPE, text=True
    )
    assert proxy.stdout is not None
    proxy.url = database_url().replace(f":{port}/", f":{int(proxy.stdout.readline())}/")
    yield proxy
    os.kill(proxy.pid, signal.SIGCONT)
    proxy.kill()
    proxy.wait()


@pytest.mark.mariadb
def test_partitioned_host_stops_its_job_before_another_host_starts_it(
    manage, tasks_file, job_dir, partition, tmp_path, log_dir
):
    tasks = tasks_file(overlap="wait")
    host_a = {
        **tasks,
        "CRONJOBS_HOST": "a",
        "CRONJOBS_LEASE_TTL": "6",
        "DATABASE_URL": partition.url,
        "LOG_DIR": str(tmp_path / "logs-a"),  # host a's own spool
    }
    host_b = {**tasks, "CRONJOBS_HOST": "b", "CRONJOBS_LEASE_TTL": "6", "FC_RUN_FOR": "3"}
    first = start(manage, host_a)
    pid = job_pid(job_dir, "a")
    wait_for(lambda: stamped_by(job_dir, "a"))
    second = start(manage, host_b)  # overlap = "wait": it takes the lease once it lapses
    wait_for(lambda: "waits for the lease" in daily_log(log_dir), timeout=60)
    os.kill(partition.pid, signal.SIGSTOP)
    frozen_at = time.time()
    wait_for(lambda: not alive(pid), timeout=20, what="host a's job to be stopped")
    lapses = Lease.objects.get(task__name="stamper").expires_at.timestamp()
    assert frozen_at < max(stamped_by(job_dir, "a")) < lapses  # ran on, then died in time
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    assert stamped_by(job_dir, "b")
    assert_never_two_at_once(job_dir)
    assert max(stamped_by(job_dir, "a")) < min(stamped_by(job_dir, "b"))
    b_run = Execution.objects.get(task__name="stamper", host="b")
    assert b_run.status == Status.SUCCEEDED
    # Host a: its job is dead; its queries time out (db.bound_waits) and its rows are spooled.
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 1, stderr
    spooled = (tmp_path / "logs-a" / "spool.jsonl").read_text()
    assert "lease lost" in spooled
    os.kill(partition.pid, signal.SIGCONT)
    replay = manage("runjob", "test_succeed", env_extra={**host_a, "DATABASE_URL": database_url()})
    assert replay.returncode == 0, replay.stderr
    a_run = Execution.objects.get(task__name="stamper", host="a")
    assert a_run.status == Status.FAILED
    assert a_run.error.startswith("lease lost: not renewed for "), a_run.error
    assert "last renewal failed: (2013, " in a_run.error  # MySQL's "Lost connection"
    assert Execution.objects.filter(task__name="stamper").count() == 2  # no retry on a


@pytest.mark.mariadb
def test_the_supervisors_query_timeouts_are_not_the_jobs(tmp_path):
    """bound_waits gives the supervisor's MySQL connection read and write timeouts; a
    function job forked from it connects with the project's own settings (a long report query
    must not fail after the supervisor's 10 s)."""
    from django.db import connections

    from cronjobs.supervisor.db import bound_waits
    from cronjobs.supervisor.process import Limits, run_attempt

    seen = tmp_path / "options"

    def job() -> None:
        options = connections["default"].settings_dict["OPTIONS"]
        seen.write_text(f"{options.get('read_timeout')} {options.get('write_timeout')}")

    project = connection.settings_dict
    try:
        bound_waits(10)
        assert connection.settings_dict["OPTIONS"]["read_timeout"] == 10
        assert connection.settings_dict["OPTIONS"]["write_timeout"] == 10
        result = run_attempt(job, Limits(timeout=30))
    finally:
        connection.settings_dict = project
    assert result.status == Status.SUCCEEDED, result.error
    assert seen.read_text() == "None None"
