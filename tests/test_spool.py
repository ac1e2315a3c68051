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


def test_replay_of_30_spooled_attempts_from_3_tasks_raises_one_outage_alert(settings):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from cronjobs.models import Alert

    settings.ALERT_EMAILS, settings.ALERT_URLS, settings.ALERT_WEBHOOK_URL = ["ops@x.org"], [], ""
    cut_off = Outage()
    cut_off.cut()
    try:
        with time_machine.travel("2026-11-02 09:00:00+00:00", tick=False) as clock:
            for _ in range(10):
                for host, task in [("web-1", "test_succeed"), ("web-2", "test_exit_three")]:
                    settings.CRONJOBS_HOST = host
                    runner.spool_not_run(task, "cron", None, DatabaseError("gone"))
                settings.CRONJOBS_HOST = "web-1"
                runner.spool_not_run("test_sleep", "cron", None, DatabaseError("gone"))
                clock.shift(timedelta(minutes=1))
    finally:
        cut_off.restore()
    assert spool.pending() == 30
    with timezone.override("UTC"):
        assert spool.replay() == 30
    assert Execution.objects.filter(error__startswith="not run: database unreachable").count() == 30
    (alert,) = Alert.objects.all()
    assert alert.kind == "outage" and alert.task.name == "watchdog"
    assert alert.message.startswith(
        "database outage: 30 attempt(s) spooled on web-1, web-2 between"
    )
    assert "2026-11-02 09:00:00" in alert.message and "2026-11-02 09:09:00" in alert.message
    assert alert.message.endswith("tasks affected: test_exit_three, test_sleep, test_succeed")
    from django.core import mail

    assert [m.subject for m in mail.outbox] == ["[flagged-cron] OPEN: outage alert for watchdog"]


def test_a_stopped_attempt_replayed_from_the_spool_keeps_who_stopped_it(
    make_spec, manage, monkeypatch, settings
):
    settings.CRONJOBS_LEASE_BEAT = 1
    cut_off = Outage()

    def stop_then_lose_database(*args, **kwargs):
        # A second process asks for the stop while the job runs; the supervisor sees it on
        # its beat, kills the job, and then cannot record the cancelled attempt.
        stop = manage("stopjob", "stoppable")
        assert stop.returncode == 0, stop.stderr
        result = process.run_attempt(*args, **kwargs)
        cut_off.cut()
        return result

    monkeypatch.setattr(runner, "run_attempt", stop_then_lose_database)
    try:
        outcome = runner.run_task(make_spec("sleep_forever", name="stoppable", max_attempts=1))
    finally:
        cut_off.restore()
    assert outcome.status == Status.CANCELLED
    assert spool.replay() == 1
    row = Execution.objects.get(run_id=outcome.run_id)
    assert row.status == Status.CANCELLED
    assert row.stopped_by == "manage.py stopjob"
    assert row.error == "stopped by manage.py stopjob"


CHAIN = """
[tasks.board]
command = ["sh", "-c", "echo board"]
timeout = 10
max_attempts = 1

[tasks.digest]
command = ["sh", "-c", "echo digest"]
timeout = 10
after = ["board"]
"""


@pytest.fixture
def chain(tmp_path, settings):
    """board, and digest declared after it, in the shared registry for this test."""
    from cronjobs.supervisor.registry import registry

    tasks = tmp_path / "tasks.toml"
    tasks.write_text(CHAIN)
    original = settings.CRONJOBS_TASKS_FILE
    settings.CRONJOBS_TASKS_FILE = tasks
    yield registry.load(force=True)
    settings.CRONJOBS_TASKS_FILE = original
    registry.load(force=True)


def test_a_downstream_attempt_that_never_reached_the_database_keeps_its_upstream_run(
    chain, monkeypatch
):
    from cronjobs.supervisor.lease import TaskLease

    cut_off = Outage()
    acquire = TaskLease.acquire

    def acquire_then_lose_database_for_digest(lease):
        taken = acquire(lease)
        if lease.task.name == "digest":  # before its running row is written
            cut_off.cut()
        return taken

    monkeypatch.setattr(TaskLease, "acquire", acquire_then_lose_database_for_digest)
    try:
        board, digest = runner.run_chain(chain.get("board"))
    finally:
        cut_off.restore()
    assert digest.status == Status.SUCCEEDED
    assert not Execution.objects.filter(run_id=digest.run_id).exists()
    assert spool.replay() == 2  # its running row, then its finished one
    row = Execution.objects.get(run_id=digest.run_id)
    assert (row.status, row.trigger) == (Status.SUCCEEDED, "after")
    assert row.upstream_run_id == board.run_id
    assert "digest" in row.output


def test_a_record_spooled_by_an_older_version_replays_with_the_columns_it_lacks_at_defaults():
    from tests.helpers import make_task

    make_task("older")
    old = {"task": "older", "run_id": "0" * 32, "attempt": 1, "status": "succeeded"}
    old |= {"started_at": "2026-11-02T09:00:00+00:00", "duration": 1.5}
    spool.spool_path().parent.mkdir(parents=True, exist_ok=True)
    spool.spool_path().write_text(json.dumps(old) + "\n")
    assert spool.replay() == 1
    row = Execution.objects.get(run_id="0" * 32)
    assert (row.status, row.duration, row.stopped_by, row.upstream_run_id) == (
        Status.SUCCEEDED,
        1.5,
        "",
        "",
    )
