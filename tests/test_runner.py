"""The runner in-process: attempts in real child processes, recorded in the database."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from cronjobs.models import Execution, Task
from cronjobs.supervisor import logs
from cronjobs.supervisor.runner import run_task
from tests.helpers import alive

pytestmark = pytest.mark.django_db

Status = Execution.Status


def test_success_records_one_attempt_with_metrics(make_spec):
    outcome = run_task(make_spec("succeed"))
    assert outcome.exit_code == 0
    (row,) = Execution.objects.filter(run_id=outcome.run_id)
    assert row.status == Status.SUCCEEDED
    assert row.attempt == 1 and row.exit_code == 0
    assert row.finished_at >= row.started_at and row.duration >= 0
    assert row.peak_rss_bytes > 1_000_000
    assert row.cpu_user is not None and row.cpu_system is not None
    assert "hello from succeed attempt 1" in row.output
    assert "a logged warning" in row.output
    assert row.host and row.pid == os.getpid()


def test_exception_is_recorded_with_type_message_and_traceback(make_spec):
    outcome = run_task(make_spec("raise_value_error", max_attempts=1))
    row = outcome.executions[-1]
    row.refresh_from_db()
    assert outcome.exit_code == 1
    assert row.status == Status.FAILED
    assert row.error == "ValueError: the numbers do not add up"
    assert "Traceback (most recent call last)" in row.traceback
    assert "raise_value_error" in row.traceback


def test_non_zero_exit_of_a_command_task_fails(make_spec):
    from cronjobs.supervisor.registry import build_spec

    spec = build_spec(
        "shell_fails",
        "command",
        ("sh", "-c", "echo out; echo err >&2; exit 7"),
        {"timeout": 10, "max_attempts": 1},
        "test",
    )
    outcome = run_task(spec)
    row = Execution.objects.get(run_id=outcome.run_id)
    assert row.status == Status.FAILED
    assert row.exit_code == 7
    assert row.error == "exited with status 7: err"  # no line names an error: the last one
    assert "out\n" in row.output and "err\n" in row.output


def test_a_failed_commands_error_names_the_last_line_that_names_an_error(make_spec):
    from cronjobs.supervisor.registry import build_spec

    script = "echo 'Fatal error: disk full' >&2; echo '  at line 4'; echo done; exit 2"
    spec = build_spec(
        "shell_says", "command", ("sh", "-c", script), {"timeout": 10, "max_attempts": 1}, "test"
    )
    row = Execution.objects.get(run_id=run_task(spec).run_id)
    assert row.error == "exited with status 2: Fatal error: disk full"


def test_command_that_cannot_start_names_the_program(make_spec):
    from cronjobs.supervisor.registry import build_spec

    spec = build_spec(
        "missing_prog", "command", ("/nonexistent/prog",), {"timeout": 5, "max_attempts": 1}, "t"
    )
    row = run_task(spec).executions[0]
    assert row.status == Status.FAILED
    assert (row.exit_code, row.signal) == (127, None)
    assert row.error == "cannot run '/nonexistent/prog': No such file or directory"


def test_a_command_starts_with_no_signal_ignored_so_a_pipeline_ends_quietly():
    """The launcher's interpreter ignores SIGPIPE and SIGXFSZ; its command must not inherit
    that (`yes | head -1` would print write errors and `yes` exit 1 instead of ending)."""
    from cronjobs.supervisor.registry import build_spec

    script = "grep SigIgn /proc/self/status; yes | head -1"
    spec = build_spec("piped", "command", ("sh", "-c", script), {"timeout": 10}, "t")
    row = run_task(spec).executions[0]
    assert row.status == Status.SUCCEEDED
    mask, said = row.output.split("\n", 1)
    ignored = int(mask.removeprefix("SigIgn:\t"), 16)  # bit n - 1 for signal n
    assert not ignored & (1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1))
    assert said == "y\n"  # no "Broken pipe" from yes


def test_a_command_runs_as_the_child_of_the_launcher_which_is_the_keeper():
    """supervisor -> launcher.py (the keeper: own session, exec'd, not a fork of Django) ->
    the command, with no Python fork in between."""
    from cronjobs.supervisor.process import LAUNCHER
    from cronjobs.supervisor.registry import build_spec

    script = 'cat /proc/$$/stat; cat /proc/$PPID/stat; tr "\\0" " " < /proc/$PPID/cmdline'
    spec = build_spec("tree", "command", ("sh", "-c", script), {"timeout": 10}, "t")
    row = run_task(spec).executions[0]
    assert row.status == Status.SUCCEEDED, row.error
    command_stat, keeper_stat, keeper_cmdline = row.output.splitlines()
    # /proc/PID/stat: pid (comm) state ppid pgrp session ...
    command, keeper = command_stat.split(") ")[1].split(), keeper_stat.split(") ")[1].split()
    keeper_pid = int(command[1])
    assert int(keeper[1]) == os.getpid()  # the keeper's parent is the supervisor
    assert int(keeper[2]) == int(keeper[3]) == keeper_pid  # its own session and group
    assert int(command[2]) == keeper_pid  # the command is in the keeper's group
    assert f"-I -S {LAUNCHER} --keeper {os.getpid()} " in keeper_cmdline


def test_success_is_decided_by_exit_status_not_stderr():
    from cronjobs.supervisor.registry import build_spec

    spec = build_spec("noisy_ok", "command", ("sh", "-c", "echo warning >&2"), {"timeout": 5}, "t")
    assert run_task(spec).executions[0].status == Status.SUCCEEDED


def test_timeout_kills_grandchild_that_ignores_sigterm(make_spec, job_dir):
    spec = make_spec("grandchild_ignoring_term", timeout=1, max_attempts=1)
    started = time.monotonic()
    row = run_task(spec).executions[0]
    elapsed = time.monotonic() - started
    assert row.status == Status.TIMED_OUT
    assert "timed out after 1 s" in row.error
    grandchild = int((job_dir / "grandchild.pid").read_text())
    worker = int((job_dir / "worker.pid").read_text())
    assert not alive(grandchild)
    assert not alive(worker)
    # timeout (1 s) + grace (1 s in tests) + scheduling slack: SIGKILL came after the grace.
    assert 1.9 < elapsed < 10


def test_memory_hog_is_killed_and_not_retried(make_spec):
    spec = make_spec("hog_memory", memory_limit="200M", max_attempts=3, timeout=60)
    outcome = run_task(spec)
    assert len(outcome.executions) == 1
    row = outcome.executions[0]
    assert row.status == Status.MEMORY_EXCEEDED
    assert row.peak_rss_bytes > 200 * 1024 * 1024
    assert outcome.exit_code == 1


def test_retries_are_counted_and_spaced(make_spec, job_dir):
    spec = make_spec("flaky", max_attempts=3, retry_delay=0)
    slept = []
    outcome = run_task(spec, sleep=slept.append)
    statuses = [row.status for row in outcome.executions]
    assert statuses == [Status.FAILED, Status.FAILED, Status.SUCCEEDED]
    assert [row.attempt for row in outcome.executions] == [1, 2, 3]
    assert len({row.run_id for row in outcome.executions}) == 1
    assert outcome.exit_code == 0
    assert slept == [0, 0]
    assert len((job_dir / "attempts.log").read_text().splitlines()) == 3


def test_retry_delay_is_slept_between_attempts(make_spec, job_dir):
    spec = make_spec("raise_value_error", max_attempts=2, retry_delay=1)
    started = time.monotonic()
    outcome = run_task(spec)
    assert [r.status for r in outcome.executions] == [Status.FAILED, Status.FAILED]
    gap = (outcome.executions[1].started_at - outcome.executions[0].finished_at).total_seconds()
    assert gap >= 1.0
    assert time.monotonic() - started >= 1.0


def test_disabled_task_is_recorded_as_skipped(make_spec):
    spec = make_spec("succeed")
    run_task(spec)
    Task.objects.filter(name="succeed").update(enabled=False)
    outcome = run_task(spec)
    assert outcome.exit_code == 3
    (row,) = Execution.objects.filter(run_id=outcome.run_id)
    assert row.status == Status.SKIPPED
    assert row.skip_reason == Execution.SkipReason.DISABLED
    assert row.attempt == 0


def test_output_tail_is_capped_and_full_text_goes_to_the_daily_log(make_spec, settings):
    settings.CRONJOBS_OUTPUT_TAIL = 4096
    row = run_task(make_spec("chatter")).executions[0]
    assert row.status == Status.SUCCEEDED
    assert len(row.output) <= 4096
    assert row.output.rstrip().endswith("line 19999 " + "x" * 40)
    text = logs.daily_log_path().read_text()
    assert "chatter[" in text
    assert "line 00000 " in text and "line 19999 " in text


def test_log_files_are_written(make_spec, log_dir):
    outcome = run_task(make_spec("succeed"))
    human = logs.daily_log_path()
    metrics = logs.daily_log_path("cron-metrics")
    assert human.parent == log_dir and human.name.startswith("cron-")
    assert f"run={outcome.run_id[:8]} attempt 1/3 succeeded" in human.read_text()
    (record,) = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert record["task"] == "succeed"
    assert record["run_id"] == outcome.run_id
    assert record["status"] == "succeeded"
    assert record["attempt"] == 1
    assert {"duration_s", "peak_rss_bytes", "exit_code", "host", "started_at"} <= set(record)
