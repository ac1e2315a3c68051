"""`manage.py runjob` as cron runs it: a real process, real exit codes, real signals."""

from __future__ import annotations

import signal
import subprocess

import psutil
import pytest

from cronjobs.models import Execution, Task
from tests.helpers import alive, declared_tasks_toml, queries_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

Status = Execution.Status


def test_success_exits_0_and_records_the_trigger(manage):
    result = manage("runjob", "test_succeed", "--trigger", "cron")
    assert result.returncode == 0, result.stderr
    assert "test_succeed: succeeded" in result.stdout
    row = Execution.objects.get(task__name="test_succeed")
    assert row.status == Status.SUCCEEDED
    assert row.trigger == "cron"


def test_failure_exits_1_with_the_reason(manage):
    result = manage("runjob", "test_exit_three")
    assert result.returncode == 1
    assert "exited with status 3" in result.stderr
    assert Execution.objects.get(task__name="test_exit_three").exit_code == 3


def test_disabled_task_exits_3(manage):
    manage("synctasks")
    Task.objects.filter(name="test_succeed").update(enabled=False)
    result = manage("runjob", "test_succeed")
    assert result.returncode == 3
    assert Execution.objects.get(task__name="test_succeed").skip_reason == "disabled"


def test_unknown_task_exits_2_and_lists_known_tasks(manage):
    result = manage("runjob", "no_such_task")
    assert result.returncode == 2
    assert "unknown task 'no_such_task'" in result.stderr
    assert "heartbeat" in result.stderr
    assert "test_succeed" in result.stderr
    assert not Execution.objects.exists()


def test_no_task_and_no_flag_is_a_usage_error(manage):
    result = manage("runjob")
    assert result.returncode == 2
    assert "name one task" in result.stderr


def test_list_shows_declared_tasks(manage):
    result = manage("runjob", "--list")
    assert result.returncode == 0
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["TASK", "KIND", "SCHEDULE"]
    assert any(row.startswith("heartbeat ") and "0 * * * *" in row for row in rows)


def test_all_runs_enabled_tasks_in_priority_order(manage, tmp_path):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(
        '[tasks.first]\ncommand = "true"\ntimeout = 5\npriority = 1\n'
        '[tasks.last]\ncommand = ["sh", "-c", "exit 4"]\ntimeout = 5\npriority = 5\n'
        "max_attempts = 1\n"
    )
    env = {"CRONJOBS_TASKS_FILE": str(tasks)}
    manage("synctasks", env_extra=env)
    # The test app's tasks sleep or wait on purpose: off for this run.
    Task.objects.filter(source__contains="tests/jobsapp").update(enabled=False)
    result = manage("runjob", "--all", env_extra=env)
    lines = [line.split(":")[0] for line in result.stdout.splitlines()]
    assert "test_sleep: skipped" in result.stdout
    assert lines.index("first") < lines.index("heartbeat") < lines.index("last")
    assert result.returncode == 1  # `last` failed
    assert Execution.objects.get(task__name="first").trigger == "manual"


def test_command_task_from_the_tasks_file_runs(manage, tmp_path):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(
        '[tasks.legacy_stock_sync]\ncommand = ["sh", "-c", "echo synced 42 rows"]\n'
        'schedule = "*/15 * * * *"\ntimeout = 30\nmemory_limit = "256M"\n'
    )
    result = manage("runjob", "legacy_stock_sync", env_extra={"CRONJOBS_TASKS_FILE": str(tasks)})
    assert result.returncode == 0, result.stderr
    row = Execution.objects.get(task__name="legacy_stock_sync")
    assert row.output == "synced 42 rows\n"
    assert row.task.kind == "command"
    assert row.task.memory_limit == 256 * 1024 * 1024


BAD_DECLARATIONS = [
    ("[tasks.broken\ncommand = 'true'", "tasks.toml", "file", "cannot be read as TOML"),
    (
        '[tasks.bad_cron]\ncommand = "true"\ntimeout = 5\nschedule = "61 * * * *"',
        "bad_cron",
        "schedule",
        "not a valid cron expression",
    ),
    ('[tasks.zero]\ncommand = "true"\ntimeout = 0', "zero", "timeout", "greater than zero"),
    (
        '[tasks.negative]\ncommand = "true"\ntimeout = -5',
        "negative",
        "timeout",
        "greater than zero",
    ),
    (
        '[tasks.typo]\ncommand = "true"\ntimeout = 5\ntimeuot = 9',
        "typo",
        "timeuot",
        "unknown setting",
    ),
    (
        '[tasks.big]\ncommand = "true"\ntimeout = 5\nmemory_limit = "lots"',
        "big",
        "memory_limit",
        "not a size",
    ),
]


@pytest.mark.parametrize(("toml", "task", "field", "problem"), BAD_DECLARATIONS)
def test_bad_declaration_fails_check_and_runjob_exits_2(
    manage, tmp_path, toml, task, field, problem
):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(toml)
    env = {"CRONJOBS_TASKS_FILE": str(tasks)}
    check = manage("check", env_extra=env)
    assert check.returncode != 0
    assert f"task '{task}': {field}:" in check.stderr
    assert problem in check.stderr
    run = manage("runjob", task, env_extra=env)
    assert run.returncode == 2
    assert f"task '{task}': {field}:" in run.stderr
    # One bad declaration does not stop the others.
    assert manage("runjob", "test_succeed", env_extra=env).returncode == 0


def test_job_that_raises_stores_type_message_and_traceback(manage, tmp_path):
    manage("synctasks")
    from cronjobs.supervisor.registry import build_spec
    from cronjobs.supervisor.runner import run_task

    spec = build_spec(
        "raiser",
        "callable",
        "tests.jobsapp.jobs:raise_value_error",
        {"timeout": 5, "max_attempts": 1},
        "test",
    )
    run_task(spec)
    row = Execution.objects.get(task__name="raiser")
    assert row.status == Status.FAILED
    assert row.error == "ValueError: the numbers do not add up"
    assert row.traceback.rstrip().endswith("ValueError: the numbers do not add up")


def test_killed_supervisor_leaves_no_job_process_behind(manage, job_dir):
    supervisor = subprocess.Popen(manage.argv("runjob", "test_grandchild"), env=manage.env())
    grandchild_file = job_dir / "grandchild.pid"
    wait_for(grandchild_file.exists, what="the job to write grandchild.pid")
    grandchild = int(wait_for(lambda: grandchild_file.read_text().strip()))
    worker_file = job_dir / "worker.pid"
    worker = int(wait_for(lambda: worker_file.exists() and worker_file.read_text().strip()))
    assert alive(grandchild)
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait(timeout=10)
    wait_for(lambda: not alive(grandchild) and not alive(worker), timeout=10)
    row = Execution.objects.get(task__name="test_grandchild")
    assert row.status == Status.RUNNING  # nobody finalised it: the lease takeover will


def test_killed_supervisor_leaves_no_command_process_behind(manage, job_dir, tmp_path):
    """A command's keeper is the exec'd launcher: the parent-death signal it inherited still
    kills the group, the command and what the command started in the background."""
    script = f"echo $$ > {job_dir}/command.pid; sleep 300 & echo $! > {job_dir}/sleep.pid; wait"
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(f"[tasks.held]\ntimeout = 600\ncommand = ['sh', '-c', '{script}']\n")
    env = manage.env({"CRONJOBS_TASKS_FILE": str(tasks)})
    supervisor = subprocess.Popen(manage.argv("runjob", "held"), env=env)
    sleep_file = job_dir / "sleep.pid"
    sleeper = int(wait_for(lambda: sleep_file.exists() and sleep_file.read_text().strip()))
    command = int((job_dir / "command.pid").read_text())
    keeper = psutil.Process(command).ppid()
    assert psutil.Process(keeper).ppid() == supervisor.pid
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait(timeout=10)
    wait_for(lambda: not any(alive(pid) for pid in (keeper, command, sleeper)), timeout=10)


def test_sigterm_to_the_supervisor_records_a_failed_attempt(manage):
    supervisor = subprocess.Popen(
        manage.argv("runjob", "test_sleep"),
        env=manage.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(lambda: Execution.objects.filter(task__name="test_sleep").exists())
    # The keeper forks the worker once its own process group is set up.
    tree = psutil.Process(supervisor.pid)
    wait_for(lambda: len(tree.children(recursive=True)) >= 2, what="the keeper and its worker")
    supervisor.send_signal(signal.SIGTERM)
    supervisor.wait(timeout=20)
    assert supervisor.returncode != 0
    row = Execution.objects.get(task__name="test_sleep")
    assert row.status == Status.FAILED
    assert "supervisor interrupted" in row.error
    assert "SIGTERM" in row.error


def test_list_queries_do_not_grow_with_the_number_of_tasks(settings, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    from cronjobs.supervisor.registry import registry

    original = settings.CRONJOBS_TASKS_FILE

    def listed(count: int) -> int:
        settings.CRONJOBS_TASKS_FILE = tmp_path / f"tasks-{count}.toml"
        settings.CRONJOBS_TASKS_FILE.write_text(declared_tasks_toml(count))
        registry.load(force=True)
        out = StringIO()
        queries = queries_of(lambda: call_command("runjob", "--list", stdout=out))
        assert out.getvalue().count("declared_") == count
        return queries

    try:
        assert listed(5) == listed(60) == 1
    finally:
        settings.CRONJOBS_TASKS_FILE = original
        registry.load(force=True)
