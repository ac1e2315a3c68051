"""One run per slot (cronjobs/supervisor/slots.py): real `runjob --trigger cron` processes for
several hosts on one database, with the clock set by libfaketime (Debian's `faketime`); the
claim, the deadline, the jitter and the catch-up's share of the claims in-process."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from cronjobs.models import Execution, Task
from cronjobs.supervisor import runner, slots, watchdog
from cronjobs.supervisor.registry import build_spec
from cronjobs.supervisor.sync import sync_task
from cronjobs.tasksettings import TaskSpec
from tests.helpers import make_task

SLOT = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
PROCESS_STARTED = slots.process_started  # the real one; in-process tests replace it

EVERY_MINUTE = """
[tasks.quick]
command = ["sh", "-c", "echo slot=$CRONJOBS_SCHEDULED_FOR"]
schedule = "* * * * *"
timeout = 10
max_attempts = 1

[tasks.daily]
command = ["sh", "-c", "echo daily"]
schedule = "5 7 * * *"
timeout = 10
max_attempts = 1
start_deadline = 5
"""

needs_faketime = pytest.mark.skipif(
    shutil.which("faketime") is None, reason="faketime is not installed (bin/system-deps test)"
)


@pytest.fixture
def tasks_env(tmp_path):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(EVERY_MINUTE)
    return {"CRONJOBS_TASKS_FILE": str(tasks), "TIME_ZONE": "UTC"}


def at(moment: datetime, argv: list[str]) -> list[str]:
    """argv run with the wall clock starting at `moment` (UTC) and going on from there."""
    return ["faketime", "-f", moment.strftime("@%Y-%m-%d %H:%M:%S"), *argv]


def faked(manage, tasks_env, host: str) -> dict:
    return manage.env({**tasks_env, "CRONJOBS_HOST": host, "TZ": "UTC", "DONT_FAKE_MONOTONIC": "1"})


def runjob_at(manage, tasks_env, moment: datetime, host: str, *args: str):
    return subprocess.run(
        at(moment, manage.argv("runjob", *args)),
        env=faked(manage, tasks_env, host),
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_faketime
@pytest.mark.django_db(transaction=True)
def test_three_hosts_in_one_minute_run_the_slot_once(manage, tasks_env):
    """Hosts a, b and c fire 0, 1.5 and 3 s apart inside one minute: one run, two skips naming
    the slot; a manual run in the same minute still runs; the next minute's slot runs again."""
    started = []
    for offset, host in ((0.0, "a"), (1.5, "b"), (3.0, "c")):
        moment = SLOT + timedelta(seconds=2 + offset)
        argv = at(moment, manage.argv("runjob", "quick", "--trigger", "cron"))
        started.append(
            subprocess.Popen(
                argv,
                env=faked(manage, tasks_env, host),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        time.sleep(1.5)
    codes = [process.wait(timeout=120) for process in started]
    assert sorted(codes) == [0, 3, 3], [p.stderr.read() for p in started if p.stderr]
    rows = list(Execution.objects.filter(task__name="quick"))
    ran = [row for row in rows if row.status == "succeeded"]
    skipped = [row for row in rows if row.status == "skipped"]
    assert len(ran) == 1 and len(skipped) == 2
    (run,) = ran
    assert run.host == "abc"[codes.index(0)]
    assert run.scheduled_for == SLOT
    assert 0 <= run.start_lag < 60
    assert "slot=2026-07-01T10:00:00+00:00" in run.output
    for row in skipped:
        assert (row.skip_reason, row.trigger, row.scheduled_for) == ("slot_taken", "cron", SLOT)
        assert "slot 2026-07-01 10:00 UTC already claimed" in row.error
        assert f"by run {run.run_id[:8]} on {run.host}" in row.error

    manual = runjob_at(manage, tasks_env, SLOT + timedelta(seconds=20), "b", "quick")
    assert manual.returncode == 0, manual.stderr
    row = Execution.objects.get(task__name="quick", trigger="manual")
    assert (row.status, row.scheduled_for, row.start_lag) == ("succeeded", None, None)
    assert "slot=\n" in row.output or row.output.strip() == "slot="

    following = SLOT + timedelta(minutes=1, seconds=2)
    again = runjob_at(manage, tasks_env, following, "c", "quick", "--trigger", "cron")
    assert again.returncode == 0, again.stderr
    latest = Execution.objects.filter(task__name="quick", trigger="cron", status="succeeded")
    assert sorted(row.scheduled_for for row in latest) == [SLOT, SLOT + timedelta(minutes=1)]


@needs_faketime
@pytest.mark.django_db(transaction=True)
def test_a_cron_call_past_the_start_deadline_is_skipped_and_the_watchdog_says_late(
    manage, tasks_env
):
    slot = datetime(2026, 7, 1, 7, 5, tzinfo=UTC)
    late = runjob_at(
        manage, tasks_env, slot + timedelta(seconds=20), "a", "daily", "--trigger", "cron"
    )
    assert late.returncode == 3, late.stderr
    row = Execution.objects.get(task__name="daily")
    assert (row.status, row.skip_reason, row.scheduled_for) == ("skipped", "deadline", slot)
    assert "past the start deadline of 5s" in row.error
    task = Task.objects.get(name="daily")
    assert task.claimed_slot is None  # a late call leaves the slot to a host on time
    Task.objects.filter(pk=task.pk).update(created_at=slot - timedelta(days=1))
    report = watchdog.check_late(now=slot + watchdog.grace_for(task) + timedelta(minutes=1))
    assert "daily" in report["late"]


@needs_faketime
@pytest.mark.django_db(transaction=True)
def test_a_cron_call_at_no_slot_exits_3_and_records_nothing(manage, tasks_env):
    result = runjob_at(
        manage, tasks_env, datetime(2026, 7, 1, 9, 0, tzinfo=UTC), "a", "daily", "--trigger", "cron"
    )
    assert result.returncode == 3
    assert "daily: not run on this host: not a slot of '5 7 * * *' in UTC" in result.stderr
    assert not Execution.objects.filter(task__name="daily").exists()


# In-process: the claim, the jitter and the watchdog. ---------------------------------------


@pytest.fixture(autouse=True)
def cron_started_us_just_now(request, monkeypatch):
    """In-process cron calls happen on a travelling clock, which the kernel's process start
    time knows nothing of: each is taken as a process cron started at that moment."""
    if "manage" not in request.fixturenames:
        monkeypatch.setattr(slots, "process_started", lambda now: now)


def every_minute(**options) -> TaskSpec:
    declared = {"timeout": 10, "max_attempts": 1, "schedule": "* * * * *", **options}
    return build_spec("minutely", "command", ("true",), declared, "test")


@pytest.mark.django_db
def test_a_slot_is_claimed_once_and_only_forward():
    task = make_task("claims")
    assert slots.claim(task, SLOT)
    assert not slots.claim(task, SLOT)  # the same slot, another host
    assert not slots.claim(task, SLOT - timedelta(minutes=1))  # an older slot, a late host
    assert slots.claim(task, SLOT + timedelta(minutes=1))
    assert Task.objects.get(pk=task.pk).claimed_slot == SLOT + timedelta(minutes=1)


def test_the_slot_is_the_latest_scheduled_time_within_the_tolerance(settings):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS_SLOT_TOLERANCE = 120
    spec = every_minute(schedule="*/15 * * * *")
    found = slots.find(spec, SLOT + timedelta(seconds=90))
    assert (found.slot, found.lag) == (SLOT, 90.0)
    assert slots.find(spec, SLOT).slot == SLOT  # cron starts us at the slot's very second
    missed = slots.find(spec, SLOT + timedelta(seconds=121))
    assert missed.slot is None
    assert "the last was 2026-07-01 10:00 UTC" in missed.why


def test_a_call_a_busy_host_started_late_keeps_the_slot_cron_fired_it_for(settings):
    settings.TIME_ZONE = "UTC"
    spec = every_minute()
    # cron exec'd it 1 s after 10:00; it looked 95 s later, in the 10:01 minute.
    found = slots.find(spec, SLOT + timedelta(seconds=96), began=SLOT + timedelta(seconds=1))
    assert (found.slot, found.lag) == (SLOT, 96.0)
    # A process start after the clock's now (a clock set back) is not believed.
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)
    assert PROCESS_STARTED(long_ago) == long_ago
    now = datetime.now(UTC)
    assert now - timedelta(seconds=settings.CRONJOBS_SLOT_TOLERANCE) <= PROCESS_STARTED(now)
    assert PROCESS_STARTED(now) <= now


def test_jitter_is_stable_per_task_and_host_and_below_the_setting():
    spec = every_minute(jitter=30)
    delays = {host: slots.jitter_delay(spec, host) for host in ("a", "b", "c", "d")}
    assert all(0 <= delay < 30 for delay in delays.values())
    assert len(set(delays.values())) == 4  # hosts spread out
    assert delays == {host: slots.jitter_delay(spec, host) for host in delays}  # every day
    assert slots.jitter_delay(every_minute(), "a") == 0.0


@pytest.mark.django_db(transaction=True)
def test_jitter_delays_the_start_and_the_start_lag_leaves_it_out(settings):
    settings.TIME_ZONE = "UTC"
    spec = every_minute(jitter=40)
    delay = slots.jitter_delay(spec, settings.CRONJOBS_HOST)
    waited: list[float] = []

    def sleep(seconds: float) -> None:  # the jitter passes on the travelling clock
        waited.append(seconds)
        traveller.shift(seconds)

    with time_machine.travel(SLOT + timedelta(seconds=1), tick=False) as traveller:
        outcome = runner.run_task(spec, Execution.Trigger.CRON, sleep=sleep)
    assert outcome.status == "succeeded"
    assert waited[0] == delay > 0
    (row,) = outcome.executions
    assert (row.started_at - SLOT).total_seconds() == pytest.approx(1 + delay, abs=0.01)
    assert row.start_lag == pytest.approx(1.0, abs=0.01)


@pytest.mark.django_db(transaction=True)
def test_a_slot_the_watchdog_caught_up_never_also_runs_from_cron(settings):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS_SLOT_TOLERANCE = 3600  # a cron call an hour late still belongs to it
    spec = every_minute(schedule="0 10 * * *", catch_up=True)
    task = sync_task(spec)
    Task.objects.filter(pk=task.pk).update(created_at=SLOT - timedelta(days=1))
    started = []
    caught_up_at = SLOT + timedelta(seconds=settings.CRONJOBS_LATE_GRACE + 60)
    with time_machine.travel(caught_up_at, tick=False):
        names = watchdog.catch_up(start=lambda name, trigger, slot: started.append(slot))
    assert names == ["minutely"] and started == [SLOT]
    with time_machine.travel(caught_up_at + timedelta(seconds=5), tick=False):
        late = runner.run_task(spec, Execution.Trigger.CRON)
    (row,) = late.executions
    assert (row.status, row.skip_reason, row.scheduled_for) == ("skipped", "slot_taken", SLOT)


@pytest.mark.django_db(transaction=True)
def test_a_slot_cron_ran_is_not_caught_up(settings):
    settings.TIME_ZONE = "UTC"
    spec = every_minute(schedule="0 10 * * *", catch_up=True)
    with time_machine.travel(SLOT + timedelta(seconds=2), tick=False):
        assert runner.run_task(spec, Execution.Trigger.CRON).status == "succeeded"
    Task.objects.filter(name="minutely").update(created_at=SLOT - timedelta(days=1))
    with time_machine.travel(SLOT + timedelta(minutes=10), tick=False):
        assert watchdog.catch_up(start=lambda name, trigger, slot: None) == []


@pytest.mark.django_db(transaction=True)
def test_runs_a_person_starts_are_not_bound_to_a_slot(settings):
    settings.TIME_ZONE = "UTC"
    spec = every_minute()
    with time_machine.travel(SLOT + timedelta(seconds=2), tick=False):
        assert runner.run_task(spec, Execution.Trigger.CRON).status == "succeeded"
        for trigger in (Execution.Trigger.MANUAL, Execution.Trigger.API, Execution.Trigger.ADMIN):
            outcome = runner.run_task(spec, trigger)
            assert outcome.status == "succeeded"
            assert outcome.executions[0].scheduled_for is None


def test_may_be_due_is_false_only_where_find_finds_no_slot(settings):
    from cronjobs.supervisor.slots import find, may_be_due

    settings.TIME_ZONE = "UTC"
    specs = [
        build_spec(f"t{n}", "command", ("true",), {"schedule": s, "timeout": 10, **z}, "here")
        for n, (s, z) in enumerate(
            [
                ("5 7 * * *", {}),
                ("*/15 * * * *", {}),
                ("30 1 * * 0", {"time_zone": "Europe/London"}),
                ("0 2 * * *", {"time_zone": "America/New_York"}),
            ]
        )
    ]
    start = datetime(2026, 3, 7, tzinfo=UTC)
    shortcuts = 0
    for minutes in range(0, 3 * 24 * 60, 7):  # over New York's clock change (8 March)
        began = start + timedelta(minutes=minutes, seconds=3)
        for spec in specs:
            if not may_be_due(spec, began):
                assert find(spec, began).slot is None, (spec.name, began)
                shortcuts += 1
    assert shortcuts > 1000
