"""Chains (`after = [...]`): a success runs the tasks declared after it in the same `runjob`
invocation; a failure runs none; unknown names and cycles are declaration errors."""

from __future__ import annotations

import pytest

from cronjobs.models import Execution, Task

pytestmark = pytest.mark.django_db(transaction=True)

CHAIN = """
[tasks.board]
command = ["sh", "-c", "exit ${BOARD_EXIT:-0}"]
pass_env = ["BOARD_EXIT"]
timeout = 10
max_attempts = 1
priority = 3

[tasks.badges]
command = ["sh", "-c", "echo badges"]
timeout = 10
after = ["board"]
priority = 3

[tasks.digest]
command = ["sh", "-c", "echo digest"]
timeout = 10
after = ["board"]
priority = 1

[tasks.weekly]
command = ["sh", "-c", "echo weekly"]
timeout = 10
after = ["badges", "digest"]
"""


@pytest.fixture
def chain(manage, tmp_path):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(CHAIN)
    env = {"CRONJOBS_TASKS_FILE": str(tasks), "BOARD_EXIT": "0"}

    def run(*args: str, **extra: str):
        return manage(*args, env_extra={**env, **extra})

    return run


def rows(name: str) -> list[Execution]:
    return list(Execution.objects.filter(task__name=name))


def test_success_runs_each_downstream_once_in_priority_order_with_the_upstream_run_id(chain):
    result = chain("runjob", "board", "--trigger", "cron")
    assert result.returncode == 0, result.stderr
    (board,) = rows("board")
    ran = list(Execution.objects.exclude(task__name="board").order_by("started_at", "id"))
    # digest (priority 1) before badges (3); weekly, after both, runs once, after the first.
    assert [row.task.name for row in ran] == ["digest", "weekly", "badges"]
    assert {row.trigger for row in ran} == {"after"}
    assert ran[0].upstream_run_id == board.run_id
    assert ran[1].upstream_run_id == ran[0].run_id  # weekly ran after digest's success
    assert all(row.status == "succeeded" for row in ran)
    assert "digest: succeeded" in result.stdout and "badges: succeeded" in result.stdout


def test_a_failed_upstream_runs_none_of_its_downstream_tasks(chain):
    result = chain("runjob", "board", BOARD_EXIT="4")
    assert result.returncode == 1
    assert rows("board")[0].status == "failed"
    assert list(Execution.objects.exclude(task__name="board")) == []


def test_a_disabled_downstream_task_is_passed_over_without_a_row(chain):
    chain("synctasks")
    Task.objects.filter(name="digest").update(enabled=False)
    assert chain("runjob", "board").returncode == 0
    assert rows("digest") == []
    assert rows("badges")[0].status == "succeeded"
    assert rows("weekly")[0].upstream_run_id == rows("badges")[0].run_id


def test_a_downstream_task_still_runs_on_its_own(chain):
    result = chain("runjob", "badges", "--trigger", "cron")
    assert result.returncode == 0, result.stderr
    assert rows("badges")[0].trigger == "cron"
    assert rows("board") == []


def test_run_all_runs_downstream_tasks_only_after_their_upstream(chain):
    Task.objects.all().delete()
    chain("synctasks")
    Task.objects.filter(source__contains="tests/jobsapp").update(enabled=False)
    result = chain("runjob", "--all")
    order = [line.split(":")[0] for line in result.stdout.splitlines()]
    assert order.index("board") < order.index("digest") < order.index("badges")
    assert order.count("weekly") == 1
    assert rows("badges")[0].trigger == "after"


@pytest.mark.parametrize(
    ("toml", "task", "problem"),
    [
        (
            '[tasks.lonely]\ncommand = "true"\ntimeout = 5\nafter = ["nobody"]\n',
            "lonely",
            "unknown task 'nobody'",
        ),
        (
            '[tasks.egg]\ncommand = "true"\ntimeout = 5\nafter = ["hen"]\n'
            '[tasks.hen]\ncommand = "true"\ntimeout = 5\nafter = ["egg"]\n',
            "hen",
            "makes a cycle: egg -> hen -> egg",
        ),
        (
            '[tasks.self]\ncommand = "true"\ntimeout = 5\nafter = ["self"]\n',
            "self",
            "a task cannot run after itself",
        ),
        (
            '[tasks.typed]\ncommand = "true"\ntimeout = 5\nafter = "board"\n',
            "typed",
            "is not a list of task names",
        ),
    ],
)
def test_unknown_upstreams_and_cycles_fail_check_and_runjob_exits_2(
    manage, tmp_path, toml, task, problem
):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(toml)
    env = {"CRONJOBS_TASKS_FILE": str(tasks)}
    check = manage("check", env_extra=env)
    assert check.returncode != 0
    assert f"task '{task}': after:" in check.stderr and problem in check.stderr
    run = manage("runjob", task, env_extra=env)
    assert run.returncode == 2
    assert problem in run.stderr
    assert not Execution.objects.filter(task__name=task).exists()


def test_the_admin_task_page_links_upstream_and_downstream_tasks(chain, client):
    from tests.helpers import make_user

    chain("synctasks")
    client.force_login(make_user("reader", "view_task"))
    badges = Task.objects.get(name="badges")
    page = client.get(f"/admin/cronjobs/task/{badges.pk}/change/").content.decode()
    board = Task.objects.get(name="board")
    weekly = Task.objects.get(name="weekly")
    assert f'href="/admin/cronjobs/task/{board.pk}/change/">board</a>' in page  # runs after
    assert f'href="/admin/cronjobs/task/{weekly.pk}/change/">weekly</a>' in page  # runs before


def test_a_downstream_attempt_links_the_upstream_run_in_the_admin_and_the_api(chain, client):
    from tests.helpers import make_user

    chain("runjob", "board")
    (board,) = rows("board")
    (digest,) = rows("digest")
    client.force_login(make_user("reader", "view_execution", "view_task"))
    page = client.get(f"/admin/cronjobs/execution/{digest.pk}/change/").content.decode()
    assert f'?run_id={board.run_id}">{board.run_id[:8]}</a>' in page
    api = client.get("/api/tasks/digest/").json()
    assert api["last_run"]["upstream_run_id"] == board.run_id
    assert api["after"] == ["board"]
