"""The dispatcher, `runjob --due` (cronjobs/supervisor/dispatch.py): real dispatcher processes
forking real supervisors on SQLite and MariaDB, the clock set by libfaketime so a burst starts
two seconds into its minute; a dispatcher killed with SIGKILL mid-burst; three hosts sharing a
burst on one MariaDB."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest

from cronjobs.models import Execution, Task
from cronjobs.supervisor import slots
from cronjobs.supervisor.dispatch import HostCap
from tests.test_slots import at, faked, needs_faketime

SLOT = datetime(2027, 1, 1, 0, 0, tzinfo=UTC)
DONE = ("succeeded", "failed", "skipped", "timed_out", "cancelled", "memory_exceeded")


def tasks_file(tmp_path, count: int, command: str = "echo ran $CRONJOBS_TASK", **extra) -> dict:
    """`count` tasks due every minute, priorities spread, each running `command`."""
    options = "".join(f"{key} = {value}\n" for key, value in extra.items())
    text = "".join(
        f'[tasks.t{n:04d}]\ncommand = ["sh", "-c", "{command}"]\nschedule = "* * * * *"\n'
        f"timeout = 30\nmax_attempts = 1\npriority = {n % 7}\n{options}\n"
        for n in range(count)
    )
    path = tmp_path / "tasks.toml"
    path.write_text(text)
    return {"CRONJOBS_TASKS_FILE": str(path), "TIME_ZONE": "UTC"}


def dispatch(manage, tasks_env, host: str, moment: datetime, cap: int) -> subprocess.Popen:
    env = faked(manage, {**tasks_env, "CRONJOBS_MAX_RUNNING": str(cap)}, host)
    return subprocess.Popen(
        at(moment, manage.argv("runjob", "--due")),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_rows(count: int, timeout: float = 240) -> list[Execution]:
    """Every row, once `count` runs have finished (the dispatcher exits before they do)."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        rows = list(Execution.objects.select_related("task").order_by("started_at"))
        if sum(row.status in DONE for row in rows) >= count:
            return rows
        time.sleep(0.25)
    raise AssertionError(f"{sum(r.status in DONE for r in rows)} of {count} runs finished")


def most_at_once(rows: list[Execution]) -> int:
    """The most attempts running at one moment, from the rows' own start and finish times."""
    edges = sorted(
        [(row.started_at, 1) for row in rows] + [(row.finished_at, -1) for row in rows],
        key=lambda edge: (edge[0], edge[1]),  # a finish before a start at the same instant
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def assert_each_slot_ran_once(rows: list[Execution], names: set[str]) -> None:
    ran = [row for row in rows if row.status != "skipped"]
    assert sorted(row.task.name for row in ran) == sorted(names)  # each once, none twice
    for row in ran:
        assert (row.status, row.trigger, row.scheduled_for) == ("succeeded", "cron", SLOT)
        assert row.finished_at and row.duration is not None and row.exit_code == 0
        assert row.output == f"ran {row.task.name}\n"
        assert 0 <= row.start_lag < 58
    claims = Task.objects.filter(name__in=names)
    assert {task.claimed_slot for task in claims} == {SLOT}
    assert all(task.claimed_by.startswith("run ") for task in claims)


@needs_faketime
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_200_runs_each_slot_once_and_never_more_than_the_cap(manage, tmp_path):
    tasks_env = tasks_file(tmp_path, 200)
    dispatcher = dispatch(manage, tasks_env, "a", SLOT + timedelta(seconds=2), cap=6)
    out, err = dispatcher.communicate(timeout=240)
    assert dispatcher.returncode == 0, err
    assert "dispatched 200 run(s) on a; 0 slot(s) taken by other hosts" in out
    rows = wait_for_rows(200)
    assert_each_slot_ran_once(rows, {f"t{n:04d}" for n in range(200)})
    assert len({row.pid for row in rows}) == 200  # a supervisor of its own each
    assert {row.host for row in rows} == {"a"}
    assert 2 <= most_at_once(rows) <= 6
    # By priority: every priority-0 task started before any priority-6 one.
    first = {row.task.name: row.started_at for row in rows}
    zeros = [first[f"t{n:04d}"] for n in range(0, 200, 7)]
    sixes = [first[f"t{n:04d}"] for n in range(6, 200, 7)]
    assert max(zeros) < min(sixes) + timedelta(seconds=1)


@needs_faketime
@pytest.mark.django_db(transaction=True)
def test_a_dispatcher_killed_mid_burst_loses_no_slot(manage, tmp_path):
    """SIGKILL while supervisors run and slots wait: the runs started finish and record
    themselves, a claim it made but did not start is taken over, and the next dispatcher of the
    minute runs every slot left, each once."""
    tasks_env = tasks_file(tmp_path, 40, command="sleep 0.4; echo ran $CRONJOBS_TASK")
    first = dispatch(manage, tasks_env, "a", SLOT + timedelta(seconds=2), cap=4)
    give_up = time.monotonic() + 60
    while Execution.objects.count() < 6 and time.monotonic() < give_up:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    # A claim the dead dispatcher could have made just before the kill and never started:
    orphan = Task.objects.filter(claimed_slot__isnull=True).order_by("name").first()
    assert orphan is not None
    assert slots.claim_many([orphan.pk], SLOT, slots.Token.DISPATCH.make(pid=first.pid))
    second = dispatch(manage, tasks_env, "a", SLOT + timedelta(seconds=20), cap=4)
    out, err = second.communicate(timeout=240)
    assert second.returncode == 0, err
    assert "1 taken over from dead dispatchers" in out
    rows = wait_for_rows(40)
    assert_each_slot_ran_once(rows, {f"t{n:04d}" for n in range(40)})
    assert {row.pid for row in rows if row.task.name == orphan.name} != {first.pid}
    assert most_at_once(rows) <= 4


@needs_faketime
@pytest.mark.django_db(transaction=True)
def test_a_supervisor_whose_claim_was_taken_over_records_nothing(manage, tmp_path):
    tasks_env = tasks_file(tmp_path, 1)
    taken = runjob_claimed(manage, tasks_env, token="dispatch 1 1 elsewhere", holder="run 1 2 b")
    assert taken.returncode == 3, taken.stderr
    assert "took the slot over" in taken.stderr
    assert not Execution.objects.exists()
    mine = runjob_claimed(manage, tasks_env, token="dispatch 1 1 a", holder="dispatch 1 1 a")
    assert mine.returncode == 0, mine.stderr
    (row,) = Execution.objects.all()
    assert (row.status, row.scheduled_for) == ("succeeded", SLOT)
    assert Task.objects.get().claimed_by.startswith("run ")


def runjob_claimed(manage, tasks_env, token: str, holder: str):
    """`runjob --slot --claim` (a dispatcher's or the watchdog's start) while `holder` holds
    the slot."""
    manage("synctasks", env_extra=tasks_env)
    Task.objects.filter(name="t0000").update(claimed_slot=SLOT, claimed_by=holder)
    argv = ["runjob", "t0000", "--trigger", "cron", "--slot", SLOT.isoformat(), "--claim", token]
    return subprocess.run(
        at(SLOT + timedelta(seconds=3), manage.argv(*argv)),
        env=faked(manage, tasks_env, "a"),
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_faketime
@pytest.mark.django_db(transaction=True)
def test_a_slot_still_waiting_for_the_cap_past_its_start_deadline_is_skipped(manage, tmp_path):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(
        '[tasks.long]\ncommand = ["sleep", "3"]\nschedule = "* * * * *"\npriority = 0\n\n'
        '[tasks.quick]\ncommand = ["true"]\nschedule = "* * * * *"\npriority = 1\n'
        "start_deadline = 4\n"
    )
    tasks_env = {"CRONJOBS_TASKS_FILE": str(tasks), "TIME_ZONE": "UTC"}
    dispatcher = dispatch(manage, tasks_env, "a", SLOT + timedelta(seconds=2), cap=1)
    out, err = dispatcher.communicate(timeout=120)
    assert dispatcher.returncode == 0, err
    assert "dispatched 1 run(s)" in out and "1 skipped past their start" in out
    rows = wait_for_rows(2)
    skipped = next(row for row in rows if row.task.name == "quick")
    assert (skipped.status, skipped.skip_reason, skipped.scheduled_for) == (
        "skipped",
        "deadline",
        SLOT,
    )
    assert "past the start deadline of 4s (waited for one of the host's 1 runs)" in skipped.error


@needs_faketime
@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_three_hosts_share_a_burst_each_slot_once(manage, tmp_path):
    tasks_env = tasks_file(tmp_path, 150, command="sleep 0.1; echo ran $CRONJOBS_TASK")
    manage("synctasks", env_extra=tasks_env)  # not three first-time syncs racing
    hosts = [
        dispatch(manage, tasks_env, host, SLOT + timedelta(seconds=2), cap=4) for host in "abc"
    ]
    outputs = [host.communicate(timeout=240) for host in hosts]
    assert [host.returncode for host in hosts] == [0, 0, 0], [err for _, err in outputs]
    rows = wait_for_rows(150)
    assert_each_slot_ran_once(rows, {f"t{n:04d}" for n in range(150)})
    split = {host: sum(row.host == host for row in rows) for host in "abc"}
    assert all(split.values()), split
    for host, (out, _) in zip("abc", outputs, strict=True):
        assert f"dispatched {split[host]} run(s) on {host}" in out
    for host in "abc":
        assert most_at_once([row for row in rows if row.host == host]) <= 4


def test_run_permits_are_held_by_the_process_that_took_them(settings, tmp_path):
    settings.LOG_DIR = str(tmp_path)
    cap = HostCap(3, host="a")
    held = cap.take(5)
    assert len(held) == 3 and cap.running() == 3 and cap.take(1) == []
    pid = os.fork()
    if pid == 0:  # a supervisor keeps its copy of one permit
        os.close(held[1]), os.close(held[2])
        time.sleep(0.5)
        os._exit(0)
    for fd in held:
        os.close(fd)
    assert cap.running() == 1
    os.waitpid(pid, 0)
    assert cap.running() == 0
    assert HostCap(3, host="b").running() == 0  # another host name: its own permits


def test_runjob_names_one_of_task_due_all_or_list(manage):
    for argv in (["runjob", "--due", "x"], ["runjob", "--due", "--all"], ["runjob"]):
        result = manage(*argv)
        assert result.returncode == 2
        assert "name one task, or use --due, --all or --list" in result.stderr
    result = manage("runjob", "x", "--claim", "dispatch 1 1 a")
    assert result.returncode == 2 and "--claim needs --slot" in result.stderr
