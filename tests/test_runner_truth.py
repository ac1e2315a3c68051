"""What the runner records about hostile jobs is true (issue 11): memory of the command's own
tree, memory a function added over its worker, bounded output, a clean command environment,
and run-now leaving no zombies. Real child processes throughout."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import psutil
import pytest

from cronjobs.models import Execution
from cronjobs.supervisor import runner
from cronjobs.supervisor.registry import build_spec
from cronjobs.supervisor.runner import run_task
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db

Status = Execution.Status
MIB = 1024 * 1024


def command(name: str, argv: tuple[str, ...], **options):
    options.setdefault("timeout", 60)
    options.setdefault("max_attempts", 1)
    return build_spec(name, "command", argv, options, "test")


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-I", "-S", "-c", code)


def run_one(spec) -> Execution:
    outcome = run_task(spec)
    return Execution.objects.get(run_id=outcome.run_id, attempt=len(outcome.executions))


def test_a_sleeping_shell_records_its_own_few_mebibytes_not_the_interpreters(log_dir):
    row = run_one(command("sh_sleep", ("sh", "-c", "sleep 1")))
    assert row.status == Status.SUCCEEDED
    assert 0 < row.peak_rss_bytes < 8 * MIB
    assert row.memory_added_bytes is None
    assert row.job_memory_bytes == row.peak_rss_bytes


def test_a_command_touching_64_mib_records_60_to_90_mib(log_dir):
    row = run_one(
        command("touch_64", python("b = b'x' * (64 << 20); import time; time.sleep(0.3)"))
    )
    assert row.status == Status.SUCCEEDED
    assert 60 * MIB <= row.peak_rss_bytes <= 90 * MIB


def test_an_orphan_the_command_left_is_adopted_and_its_64_mib_billed(log_dir):
    code = "b = b'x' * (64 << 20); import time; time.sleep(0.3)"
    # The subshell exits at once, so its child is orphaned and the keeper adopts it.
    script = f'( {sys.executable} -I -S -c "{code}" & ); sleep 1'
    row = run_one(command("orphan_64", ("sh", "-c", script)))
    assert row.status == Status.SUCCEEDED
    assert 60 * MIB <= row.peak_rss_bytes <= 90 * MIB


def test_a_16_mib_limit_does_not_kill_sleep(log_dir):
    row = run_one(command("small_sleep", ("sleep", "1"), memory_limit="16M"))
    assert row.status == Status.SUCCEEDED


def test_a_100_mib_limit_kills_a_200_mib_hog_without_retry(log_dir):
    hog = python("b = b'x' * (200 << 20); import time; time.sleep(30)")
    outcome = run_task(command("hog_200", hog, memory_limit="100M", max_attempts=3))
    assert outcome.status == Status.MEMORY_EXCEEDED
    assert len(outcome.executions) == 1
    assert "memory limit of 104857600 bytes exceeded" in outcome.executions[0].error


def test_a_300_mib_spike_freed_at_once_is_stopped_or_shows_in_the_peak(log_dir):
    spike = python("b = b'x' * (300 << 20); del b; import time; time.sleep(0.2)")
    row = run_one(command("spike_300", spike, memory_limit="200M"))
    assert row.status == Status.MEMORY_EXCEEDED or row.peak_rss_bytes >= 290 * MIB


def test_a_function_that_allocates_64_mib_records_about_64_mib_added(log_dir, make_spec):
    row = run_one(make_spec("allocate_64_mib", max_attempts=1))
    assert row.status == Status.SUCCEEDED
    assert 60 * MIB <= row.memory_added_bytes <= 80 * MIB
    assert row.peak_rss_bytes >= row.memory_added_bytes + 10 * MIB  # the worker's own pages
    assert row.job_memory_bytes == row.memory_added_bytes
    metrics = (log_dir / logs_name("cron-metrics")).read_text()
    assert f'"memory_added_bytes": {row.memory_added_bytes}' in metrics


def logs_name(kind: str) -> str:
    from cronjobs.supervisor import logs

    return logs.daily_log_path(kind).name


def peak_rss_while(work, pid: int) -> int:
    """Sample `pid`'s RSS from outside while `work` runs in a thread; the largest figure."""
    peak, done = 0, threading.Event()
    thread = threading.Thread(target=lambda: (work(), done.set()))
    thread.start()
    proc = psutil.Process(pid)
    while not done.is_set():
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:  # reaped by `work` a moment before `done` was set
            break
        time.sleep(0.02)
    thread.join()
    return peak


@pytest.mark.django_db(transaction=True)
def test_a_200_mb_single_line_keeps_the_supervisor_flat_and_the_tail_capped(manage, tmp_path):
    """The supervisor is a real `runjob` process, its RSS sampled from outside."""
    printer = python("import sys\nfor _ in range(200): sys.stdout.write('x' * 1000000)")
    tasks = tmp_path / "tasks.toml"
    argv = ", ".join(json.dumps(arg) for arg in printer)
    tasks.write_text(
        f"[tasks.one_long_line]\ntimeout = 120\nmax_attempts = 1\ncommand = [{argv}]\n"
    )
    proc = subprocess.Popen(
        manage.argv("runjob", "one_long_line"),
        env=manage.env({"CRONJOBS_TASKS_FILE": str(tasks)}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak = peak_rss_while(proc.wait, proc.pid)
    assert proc.returncode == 0, proc.stderr.read().decode()
    assert peak < 80 * MIB
    row = Execution.objects.get(task__name="one_long_line")
    assert row.status == Status.SUCCEEDED
    assert 0 < len(row.output.encode()) <= 64 * 1024
    with open(runner.logs.daily_log_path(), "rb") as fh:
        assert max(len(line) for line in fh) < 65 * 1024


def test_env_in_a_command_shows_no_secret(log_dir, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://app:hunter2@db/flagged")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-scripts")
    monkeypatch.setenv("PGPASSWORD", "passed-on-purpose")
    monkeypatch.setenv("LC_TIME", "C")
    spec = command("show_env", ("env",), env={"REPORT_DIR": "/tmp/r"}, pass_env=["PGPASSWORD"])
    row = run_one(spec)
    daily = runner.logs.daily_log_path().read_text()
    for secret in ("test-only-secret", "hunter2", "sk-not-for-scripts"):
        assert secret not in row.output and secret not in daily
    shown = dict(line.split("=", 1) for line in row.output.splitlines() if "=" in line)
    assert shown["REPORT_DIR"] == "/tmp/r"
    assert shown["PGPASSWORD"] == "passed-on-purpose"
    assert shown["LC_TIME"] == "C"
    assert shown["CRONJOBS_TASK"] == "show_env" and shown["CRONJOBS_RUN_ID"] == row.run_id
    assert shown["CRONJOBS_ATTEMPT"] == "1" and "PATH" in shown and "HOME" in shown
    assert "SECRET_KEY" not in shown and "DJANGO_SETTINGS_MODULE" not in shown


@pytest.mark.django_db(transaction=True)
def test_run_now_leaves_no_defunct_children(manage, tmp_path):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text('[tasks.quick]\ntimeout = 10\ncommand = ["true"]\n')
    env = manage.env({"CRONJOBS_TASKS_FILE": str(tasks)})
    run_id = runner.start_in_background("quick", "admin", env=env)
    me = psutil.Process()
    assert me.children() == []  # the run is init's child, not this web worker's
    wait_for(lambda: Execution.objects.filter(run_id=run_id, status=Status.SUCCEEDED).exists())
    wait_for(lambda: not running(run_id))
    assert [c for c in me.children() if c.status() == psutil.STATUS_ZOMBIE] == []


def running(run_id: str) -> bool:
    """A live process whose command line carries this run id (its `runjob --run-id`)."""
    for proc in psutil.process_iter(["cmdline", "status"]):
        if run_id in (proc.info["cmdline"] or []) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            return True
    return False
