"""A command task inherits no open file of its supervisor: only stdin (/dev/null), and stdout
and stderr (the output pipe). Not the database connection (a MariaDB socket, the SQLite file),
not the supervisor's logs, not the pipe its report travels on. Runs on SQLite and MariaDB."""

from __future__ import annotations

import pytest

from cronjobs.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)

# The shell's own descriptors as `ls` reads them from /proc (ls's own directory handle is in
# ls's process, not in the shell's).
LIST_FDS = """
[tasks.list_fds]
command = ["sh", "-c", "ls -l /proc/$$/fd/"]
timeout = 30
max_attempts = 1
"""


def test_a_command_task_holds_only_stdin_stdout_and_stderr(manage, tmp_path):
    tasks_file = tmp_path / "tasks.toml"
    tasks_file.write_text(LIST_FDS)
    result = manage("runjob", "list_fds", env_extra={"CRONJOBS_TASKS_FILE": str(tasks_file)})
    assert result.returncode == 0, result.stderr
    row = Execution.objects.get(task__name="list_fds")
    assert row.status == "succeeded", row.output
    links = dict(
        line.split()[-3::2] for line in row.output.splitlines() if " -> " in line
    )  # "... 3 -> socket:[123]" -> {"3": "socket:[123]"}
    assert set(links) == {"0", "1", "2"}, row.output
    assert links["0"] == "/dev/null"
    assert not any("socket:" in target or "sqlite" in target for target in links.values())
