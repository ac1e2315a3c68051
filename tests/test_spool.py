"""Nothing is lost when the database goes away (cronjobs/supervisor/spool.py)."""

from __future__ import annotations

import json

import pytest
from django.db import DatabaseError, connection

from cronjobs.models import Execution
from cronjobs.supervisor import process, runner, spool

pytestmark = pytest.mark.django_db(transaction=True)

Status = Execution.Status


class Outage:
    """Make the database unreachable and bring it back: MariaDB at a closed port, SQLite at a
    path that cannot be opened. The real driver fails to connect; nothing is mocked."""

    def __init__(self) -> None:
        self.saved = dict(connection.settings_dict)

    def cut(self) -> None:
        connection.close()
        if connection.vendor == "mysql":
            connection.settings_dict.update(HOST="127.0.0.1", PORT=1)  # nothing listens there
        else:
            connection.settings_dict["NAME"] = "/nonexistent/dir/db.sqlite3"

    def restore(self) -> None:
        connection.close()
        connection.settings_dict.update(self.saved)


@pytest.fixture
def outage(monkeypatch):
    """The database disappears right after the attempt's child process has finished."""
    cut_off = Outage()

    def run_then_lose_database(*args, **kwargs):
        result = process.run_attempt(*args, **kwargs)
        cut_off.cut()
        return result

    monkeypatch.setattr(runner, "run_attempt", run_then_lose_database)
    yield cut_off
    cut_off.restore()


def test_result_is_spooled_when_the_database_goes_away_mid_run(make_spec, outage):
    outcome = runner.run_task(make_spec("succeed", name="spooled"))
    assert outcome.exit_code == 0  # the job's real status
    (record,) = [json.loads(line) for line in spool.spool_path().read_text().splitlines()]
    assert record["task"] == "spooled"
    assert record["status"] == "succeeded"
    assert record["run_id"] == outcome.run_id
    assert "hello from spooled attempt 1" in record["output"]


def test_failure_status_survives_the_outage(make_spec, outage):
    outcome = runner.run_task(make_spec("raise_value_error", name="spooled", max_attempts=1))
    assert outcome.exit_code == 1
    outage.restore()
    spool.replay()
    row = Execution.objects.get(run_id=outcome.run_id)
    assert row.status == Status.FAILED
    assert row.error == "ValueError: the numbers do not add up"


def test_replay_finalises_the_running_row_and_twice_adds_nothing(make_spec, outage):
    outcome = runner.run_task(make_spec("succeed", name="spooled"))
    outage.restore()
    row = Execution.objects.get(run_id=outcome.run_id)
    assert row.status == Status.RUNNING  # inserted before the job started, then cut off
    text = spool.spool_path().read_text()
    assert spool.replay() == 1
    row.refresh_from_db()
    assert row.status == Status.SUCCEEDED
    assert row.finished_at is not None
    assert spool.pending() == 0
    # Replaying the same records again (a crash between replay and truncate) is harmless.
    spool.spool_path().write_text(text)
    assert spool.replay() == 1
    assert Execution.objects.filter(run_id=outcome.run_id).count() == 1


def test_replay_keeps_records_while_the_database_is_still_down(make_spec, outage):
    runner.run_task(make_spec("succeed", name="spooled"))
    with pytest.raises(DatabaseError):
        Execution.objects.count()
    assert spool.replay() == 0
    assert spool.pending() == 1


def test_database_down_at_start_runs_nothing_and_spools_a_failed_attempt(manage, tmp_path):
    manage("synctasks")
    down = (
        "mysql://root:@127.0.0.1:1/nowhere"
        if connection.vendor == "mysql"
        else "sqlite:////nonexistent/dir/db.sqlite3"
    )
    result = manage("runjob", "test_succeed", env_extra={"DATABASE_URL": down})
    assert result.returncode == 1
    assert "database unreachable" in result.stderr
    assert spool.pending() == 1
    # The next run, with the database back, replays the missed run first.
    again = manage("runjob", "test_succeed")
    assert again.returncode == 0
    assert "replayed 1 spooled execution(s)" in again.stdout
    rows = Execution.objects.filter(task__name="test_succeed").order_by("started_at")
    assert [row.status for row in rows] == [Status.FAILED, Status.SUCCEEDED]
    assert "not run: database unreachable" in rows[0].error
