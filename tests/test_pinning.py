"""Host pinning (`hosts = [...]`): every host's crontab fires the task, only the named hosts run
it; the others exit 3 at once, record no row and write one line in their daily log."""

from __future__ import annotations

import pytest

from cronjobs.models import Execution, Task
from tests.helpers import make_user

pytestmark = pytest.mark.django_db(transaction=True)

PINNED = """
[tasks.local_files]
command = ["sh", "-c", "echo read the local files"]
timeout = 10
hosts = ["web1", "web-2.example"]
"""


@pytest.fixture
def tasks_env(tmp_path):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(PINNED)
    return {"CRONJOBS_TASKS_FILE": str(tasks)}


def test_a_pinned_task_runs_on_its_host_and_leaves_no_row_elsewhere(manage, tasks_env, log_dir):
    other = manage("runjob", "local_files", env_extra={**tasks_env, "CRONJOBS_HOST": "web3"})
    assert other.returncode == 3
    assert "local_files: not run on this host: pinned to web1, web-2.example" in other.stderr
    assert not Execution.objects.exists()
    (log,) = log_dir.glob("cron-2*.log")
    lines = log.read_text().splitlines()
    assert [line for line in lines if "local_files" in line] == [
        next(line for line in lines if "not run on web3: pinned to web1, web-2.example" in line)
    ]
    mine = manage("runjob", "local_files", env_extra={**tasks_env, "CRONJOBS_HOST": "web1"})
    assert mine.returncode == 0, mine.stderr
    row = Execution.objects.get(task__name="local_files")
    assert (row.status, row.host) == ("succeeded", "web1")
    assert Task.objects.get(name="local_files").host_names == ["web1", "web-2.example"]


def test_the_admin_shows_where_it_may_run_and_where_it_last_ran(manage, tasks_env, client):
    manage("runjob", "local_files", env_extra={**tasks_env, "CRONJOBS_HOST": "web-2.example"})
    task = Task.objects.get(name="local_files")
    client.force_login(make_user("reader", "view_task"))
    page = client.get(f"/admin/cronjobs/task/{task.pk}/change/").content.decode()
    assert "May run on" in page and "web1, web-2.example" in page
    assert "Last ran on" in page
    assert page.count("web-2.example") >= 2


@pytest.mark.parametrize(
    ("hosts", "problem"),
    [('"web1"', "is not a list of host names"), ('["web 1"]', "'web 1' is not a valid name")],
)
def test_bad_hosts_fail_check(manage, tmp_path, hosts, problem):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(f'[tasks.pinned]\ncommand = "true"\ntimeout = 5\nhosts = {hosts}\n')
    check = manage("check", env_extra={"CRONJOBS_TASKS_FILE": str(tasks)})
    assert check.returncode != 0
    assert "task 'pinned': hosts:" in check.stderr and problem in check.stderr
