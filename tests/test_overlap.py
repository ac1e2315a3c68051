"""Overlap policies (the task setting `overlap`; cronjobs/supervisor/runner.py, `take_lease`):
`skip` (today's behaviour, tests/test_lease.py), `wait` and `replace`, with two real runjob
processes as hosts a and b. Never two runs at once in any policy: the job appends its host and a
timestamp to one file, and the lines of the two hosts never interleave."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cronjobs.models import Execution, Lease
from cronjobs.supervisor.registry import ConfigError, build_spec
from cronjobs.supervisor.runner import run_task
from tests.helpers import wait_for
from tests.stamper import assert_never_two_at_once, daily_log, declare, job_pid, stamped_by, start

pytestmark = pytest.mark.django_db(transaction=True)

Status = Execution.Status


@pytest.fixture
def tasks_file(tmp_path, job_dir):
    return lambda overlap: declare(tmp_path, overlap=overlap)


def test_wait_runs_after_the_running_run_ends(manage, tasks_file, job_dir, log_dir):
    tasks = tasks_file("wait")
    first = start(manage, {**tasks, "CRONJOBS_HOST": "a", "FC_RUN_FOR": "100"})
    wait_for(lambda: stamped_by(job_dir, "a"))
    second = start(manage, {**tasks, "CRONJOBS_HOST": "b", "FC_RUN_FOR": "1"})
    wait_for(lambda: "waits for the lease" in daily_log(log_dir), timeout=60)
    (job_dir / "a.end").touch()  # host a's job ends by itself
    for runjob in (first, second):
        _, stderr = runjob.communicate(timeout=120)
        assert runjob.returncode == 0, stderr
    a_run = Execution.objects.get(task__name="stamper", host="a")
    b_run = Execution.objects.get(task__name="stamper", host="b")
    assert (a_run.status, b_run.status) == (Status.SUCCEEDED, Status.SUCCEEDED)
    assert b_run.started_at >= a_run.finished_at
    assert stamped_by(job_dir, "b")
    assert_never_two_at_once(job_dir)
    assert max(stamped_by(job_dir, "a")) < min(stamped_by(job_dir, "b"))
    assert f"run={b_run.run_id[:8]} waits for the lease (overlap = wait): run " in daily_log(
        log_dir
    )


def test_replace_cancels_the_running_run_then_runs(manage, tasks_file, job_dir, log_dir):
    tasks = tasks_file("replace")
    first = start(manage, {**tasks, "CRONJOBS_HOST": "a", "FC_RUN_FOR": "100"})
    job_pid(job_dir, "a")
    wait_for(lambda: stamped_by(job_dir, "a"))
    second = start(manage, {**tasks, "CRONJOBS_HOST": "b", "FC_RUN_FOR": "1"})
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 1, stderr  # a stopped run is not a success
    b_run = Execution.objects.get(task__name="stamper", host="b")
    replaced = Execution.objects.get(task__name="stamper", host="a")  # no retry after a stop
    assert b_run.status == Status.SUCCEEDED
    assert replaced.status == Status.CANCELLED
    assert replaced.stopped_by == f"replacement run {b_run.run_id[:8]} on b"
    assert replaced.error == f"stopped by replacement run {b_run.run_id[:8]} on b"
    assert b_run.started_at >= replaced.finished_at
    assert_never_two_at_once(job_dir)
    assert max(stamped_by(job_dir, "a")) < min(stamped_by(job_dir, "b"))
    assert f"asked run {replaced.run_id[:8]} to stop" in daily_log(log_dir)


def test_wait_gives_up_after_the_tasks_timeout_and_records_why(make_spec, job_dir):
    spec = make_spec("succeed", name="patient", overlap="wait", timeout=2)
    run_task(spec)  # creates the task row and its lease
    held_until = timezone.now() + timedelta(hours=1)
    Lease.objects.filter(task__name="patient").update(
        run_id="f" * 32, host="b", pid=4321, acquired_at=timezone.now(), expires_at=held_until
    )
    outcome = run_task(spec)
    assert outcome.status == Status.SKIPPED
    assert outcome.exit_code == 3
    skip = outcome.executions[0]
    assert skip.skip_reason == Execution.SkipReason.OVERLAP
    assert skip.error.startswith("run ffffffff on b (pid 4321) holds the lease since ")
    assert skip.error.endswith("; waited 2 s (overlap = wait)")
    assert Execution.objects.filter(task__name="patient", status=Status.SUCCEEDED).count() == 1


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("overlap", "queue", "'queue' is not one of 'skip', 'wait', 'replace'"),
        ("overlap", 1, '1 is not "skip", "wait" or "replace"'),
        ("on_lease_lost", "ignore", "'ignore' is not one of 'stop', 'continue'"),
    ],
)
def test_a_policy_that_does_not_exist_is_a_declaration_error(setting, value, problem):
    with pytest.raises(ConfigError) as error:
        build_spec("bad", "command", ("true",), {"timeout": 5, setting: value}, "test")
    assert setting in str(error.value)
    assert problem in str(error.value)
