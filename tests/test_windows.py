"""Maintenance windows (cronjobs/windows.py, the runner's gate, the watchdog, the mute path of
supervisor/alerts.py, `manage.py maintenance`, `[windows.NAME]` in the tasks file): a `skip`
window skips scheduled invocations with a `maintenance` row and exit 3 while a person's run goes
ahead, raises no `late` and catches nothing up; a `mute` window keeps alerts from the receivers
and sends each still-open one once when it ends."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cronjobs import actions, schedules, windows
from cronjobs.models import Alert, Execution, MaintenanceWindow, Task
from cronjobs.supervisor import alerts, watchdog
from cronjobs.supervisor.registry import Registry
from cronjobs.supervisor.runner import run_task
from cronjobs.supervisor.sync import sync_windows
from tests.helpers import make_execution, make_task
from tests.loopback import endpoint

pytestmark = pytest.mark.django_db


# A Sunday evening: the tills are counted from 22:00 for four hours.
def _a_december_sunday() -> datetime:
    """21:00 UTC on the first Sunday of next December: a winter evening (Paris at UTC+1), and
    always ahead of the real clock, so windows created now cover it (a fixed date became the
    past, and tests that travel there found windows created after it)."""
    first = datetime(datetime.now(UTC).year + 1, 12, 1, 21, 0, tzinfo=UTC)
    return first + timedelta(days=(6 - first.weekday()) % 7)


SUNDAY = _a_december_sunday()
COMMAND = actions.Actor.for_command("maintenance")


@pytest.fixture(autouse=True)
def utc(settings):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS_LATE_GRACE = 300


@pytest.fixture
def receiver(settings):
    """The receivers are one Apprise json:// endpoint; the built-in tasks are disabled, so
    what it hears is about the tasks a test makes (made without a schedule: never late)."""
    Task.objects.update(enabled=False)
    with endpoint() as server:
        settings.ALERT_URLS = [server.url("/hook", scheme="json")]
        settings.ALERT_EMAILS, settings.ALERT_WEBHOOK_URL = [], ""
        settings.ALERT_TIMEOUT = 2
        yield server


def recurring(name="sunday_close", tasks="tills", mode="skip", **fields) -> MaintenanceWindow:
    fields = {"start": "0 22 * * 0", "duration": 4 * 3600, "time_zone": "UTC", **fields}
    return MaintenanceWindow.objects.create(
        name=name, recurring=True, tasks=tasks, mode=mode, reason="tills are counted", **fields
    )


def one_off(tasks="tills", mode="skip", hours=2.0, reason="stock take") -> MaintenanceWindow:
    until = datetime.now(UTC) + timedelta(hours=hours)
    return actions.open_window(COMMAND, tasks.split(","), mode, reason, until)


# The window's length and the calendar ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("4h", 14400), ("30m", 1800), ("1h30m", 5400), ("2d", 172800)]
)
def test_durations_read_like_the_tasks_file_writes_them(text, seconds):
    assert schedules.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "4", "4 hours", "h4", "0m", "-1h", "1.5h"])
def test_a_duration_that_is_not_one_is_refused_by_name(text):
    with pytest.raises(ValueError, match=r"duration|no time"):
        schedules.parse_duration(text)


def test_recurring_window_is_on_from_its_start_for_its_length_in_its_own_zone():
    window = recurring(time_zone="Europe/Paris")  # 22:00 in Paris is 21:00 UTC in December
    calendar = windows.Calendar(SUNDAY + timedelta(hours=3))
    assert calendar.covering("tills", SUNDAY - timedelta(minutes=1)) is None
    on = calendar.covering("tills", SUNDAY)
    assert on is not None and on.window == window
    assert (on.start, on.end) == (SUNDAY, SUNDAY + timedelta(hours=4))
    assert calendar.covering("tills", SUNDAY + timedelta(hours=4)) is None  # the end is not in it
    assert calendar.covering("stock_sync", SUNDAY) is None  # not one of its tasks
    assert "maintenance window sunday_close until" in on.why()


def test_the_span_read_once_answers_like_each_moment_read_alone():
    window = recurring(start="*/20 * * * *", duration=300)
    now = SUNDAY + timedelta(hours=5)
    span = windows.Calendar(now, since=SUNDAY)
    for minute in range(0, 300, 7):
        at = SUNDAY + timedelta(minutes=minute)
        alone = windows.Calendar(now, windows=[window])  # `since` = now: read moment by moment
        assert span.occurrence_at(window, at) == alone.occurrence_at(window, at), at


def test_the_calendar_reads_every_window_in_one_query_for_any_number_of_tasks():
    for n in range(10):
        recurring(name=f"w{n}", tasks="*" if n == 0 else f"task_{n}", mode="mute")
    start = SUNDAY + timedelta(hours=1)  # 22:00
    with CaptureQueriesContext(connection) as queries:
        calendar = windows.Calendar(start + timedelta(hours=1), since=start)
        found = [
            calendar.covering(f"task_{n}", start + timedelta(minutes=n % 60)) for n in range(500)
        ]
    assert len(queries) == 1
    assert all(on is not None for on in found)  # "*" covers every task


# skip: the runner's gate --------------------------------------------------------------------


def test_a_scheduled_run_in_a_skip_window_records_a_maintenance_skip(make_spec):
    make_task("tills")
    one_off()
    outcome = run_task(make_spec("succeed", name="tills"), trigger=Execution.Trigger.CRON)
    assert outcome.exit_code == 3
    (row,) = Execution.objects.filter(task__name="tills")
    assert (row.status, row.skip_reason) == ("skipped", "maintenance")
    assert "maintenance window" in row.error and "stock take" in row.error


@pytest.mark.parametrize("trigger", ["manual", "admin", "api"])
def test_a_persons_run_goes_ahead_in_a_skip_window(make_spec, trigger):
    make_task("tills")
    one_off()
    assert run_task(make_spec("succeed", name="tills"), trigger=trigger).exit_code == 0


def test_a_catch_up_run_in_a_skip_window_is_skipped_and_a_mute_window_skips_nothing(make_spec):
    make_task("tills")
    make_task("other")
    one_off()
    one_off(tasks="other", mode="mute")
    spec = make_spec("succeed", name="tills")
    assert run_task(spec, trigger=Execution.Trigger.CATCH_UP).exit_code == 3
    other = make_spec("succeed", name="other")
    assert run_task(other, trigger=Execution.Trigger.CRON).exit_code == 0


def test_an_ended_window_skips_nothing_more(make_spec):
    make_task("tills")
    window = one_off()
    assert actions.end_window(COMMAND, window) is True
    assert actions.end_window(COMMAND, window) is False  # over already
    assert run_task(make_spec("succeed", name="tills"), trigger="cron").exit_code == 0


# skip: the watchdog ---------------------------------------------------------------------------


@pytest.fixture
def hourly_tills() -> Task:
    with time_machine.travel(SUNDAY - timedelta(days=1), tick=False):
        task = make_task("tills", schedule="30 * * * *", timeout=60, max_attempts=1)
    Task.objects.exclude(pk=task.pk).update(enabled=False)
    return task


def test_no_late_for_slots_the_window_skipped_and_late_again_after_it(hourly_tills):
    recurring()
    make_execution(hourly_tills, started_at=SUNDAY + timedelta(minutes=30))  # 21:30 ran
    with time_machine.travel(SUNDAY + timedelta(hours=2), tick=False):  # 23:00: 22:30 skipped
        assert watchdog.check_late()["late"] == []
    with time_machine.travel(SUNDAY + timedelta(hours=4, minutes=40), tick=False):
        assert watchdog.check_late()["late"] == []  # 01:30 was in the window too
    with time_machine.travel(SUNDAY + timedelta(hours=5, minutes=40), tick=False):
        assert watchdog.check_late()["late"] == ["tills"]  # 02:30 was not
    assert Alert.objects.get(kind="late").message.startswith("no successful run since the")


def test_catch_up_does_not_run_a_slot_the_window_skipped(hourly_tills):
    Task.objects.filter(pk=hourly_tills.pk).update(catch_up=True)
    recurring()
    started: list[tuple[str, str]] = []
    with time_machine.travel(SUNDAY + timedelta(hours=1, minutes=40), tick=False):
        assert watchdog.catch_up(start=lambda n, t, slot: started.append((n, t))) == []
    with time_machine.travel(SUNDAY + timedelta(hours=4, minutes=40), tick=False):
        assert watchdog.catch_up(start=lambda n, t, slot: started.append((n, t))) == []
    with time_machine.travel(SUNDAY + timedelta(hours=5, minutes=40), tick=False):
        assert watchdog.catch_up(start=lambda n, t, slot: started.append((n, t))) == ["tills"]
    assert started == [("tills", "catch_up")]


# mute -------------------------------------------------------------------------------------------


def test_mute_window_records_a_failure_tells_nobody_then_tells_once_when_it_ends(
    make_spec, receiver
):
    make_task("tills", schedule="")
    healed = make_task("healed", schedule="")
    with time_machine.travel(SUNDAY, tick=False) as clock:
        window = one_off(tasks="tills,healed", mode="mute", hours=1, reason="database upgrade")
        outcome = run_task(make_spec("raise_value_error", name="tills", max_attempts=1))
        assert outcome.exit_code == 1  # the run went on
        alerts.raise_alert(healed, "failed", "broken for a moment")
        alerts.resolve_kinds(healed, ["failed"], "a run succeeded")  # quietly: muted
        clock.move_to(SUNDAY + timedelta(minutes=59))
        watchdog.sweep()
        assert receiver.hits == []
        assert Alert.objects.get(task__name="tills", kind="failed").notified_at is None
        clock.move_to(SUNDAY + timedelta(hours=1, minutes=1))
        watchdog.sweep()
        watchdog.sweep()  # a second pass (or a second host) sends nothing more
    (hit,) = receiver.hits
    body = hit.json()
    assert "STILL OPEN after maintenance window" in body["title"] and "tills" in body["title"]
    assert MaintenanceWindow.objects.get(pk=window.pk).closed_through == window.ends_at


def test_a_recurring_mute_window_tells_after_each_occurrence(receiver):
    task = make_task("tills", schedule="")
    recurring(mode="mute")
    with time_machine.travel(SUNDAY + timedelta(hours=1), tick=False) as clock:
        alerts.raise_alert(task, "failed", "till count failed")
        assert receiver.hits == []
        clock.move_to(SUNDAY + timedelta(hours=5, minutes=1))
        watchdog.sweep()
        assert len(receiver.hits) == 1
        clock.move_to(SUNDAY + timedelta(days=7, hours=2))  # next Sunday, in the window
        alerts.raise_alert(task, "failed", "failed again")  # counted, not sent
        assert len(receiver.hits) == 1
        clock.move_to(SUNDAY + timedelta(days=7, hours=5, minutes=1))
        watchdog.sweep()
    assert len(receiver.hits) == 2


def test_ending_a_mute_window_early_tells_its_open_alerts_once(receiver, manage_in_process):
    task = make_task("tills", schedule="")
    window = one_off(mode="mute")
    alerts.raise_alert(task, "failed", "still broken")
    assert receiver.hits == []
    out = manage_in_process("maintenance", "end", str(window.pk))
    assert f"window {window.pk} ended" in out
    assert len(receiver.hits) == 1
    watchdog.sweep()
    assert len(receiver.hits) == 1


@pytest.fixture
def manage_in_process():
    from io import StringIO

    from django.core.management import call_command

    def run(*args: str) -> str:
        out = StringIO()
        call_command(*args, stdout=out)
        return out.getvalue()

    return run


# manage.py maintenance --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_skip_window_by_command_skips_cron_runs_not_a_persons(manage):
    assert manage("synctasks").returncode == 0
    added = manage(
        "maintenance", "add", "--tasks", "test_succeed", "--for", "2h", "--mode", "skip",
        "--reason", "stock take",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    window = MaintenanceWindow.objects.get()
    assert f"window {window.pk} (skip) on until" in added.stdout
    listed = manage("maintenance", "list").stdout
    assert "ON until" in listed and "stock take" in listed and "test_succeed" in listed
    cron = manage("runjob", "test_succeed", "--trigger", "cron")
    assert cron.returncode == 3, cron.stderr
    row = Execution.objects.get(task__name="test_succeed")
    assert row.skip_reason == "maintenance" and "maint" in row.error
    assert manage("runjob", "test_succeed").returncode == 0  # a person's run
    assert manage("maintenance", "end", str(window.pk)).returncode == 0
    assert manage("runjob", "test_succeed", "--trigger", "cron").returncode == 0
    statuses = list(Execution.objects.order_by("id").values_list("status", flat=True))
    assert statuses == ["skipped", "succeeded", "succeeded"]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--tasks", "nope", "--for", "2h"], "unknown task 'nope'"),
        (["--tasks", "tills", "--for", "0m"], "is no time at all"),
        (["--tasks", "tills", "--for", "2 weeks"], "is not a duration"),
        (["--tasks", "tills", "--for", "31d"], "more than 30 days ahead"),
        (["--tasks", "tills", "--until", "2020-01-01T00:00"], "is not in the future"),
        (["--tasks", "tills", "--until", "soon"], "is not an ISO 8601 date and time"),
        (["--tasks", "tills,*", "--for", "2h"], '"*" already means every task'),
    ],
)
def test_bad_maintenance_input_exits_2_naming_the_problem_and_writes_nothing(args, problem):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    make_task("tills")
    with pytest.raises(CommandError) as error:
        call_command("maintenance", "add", *args, "--mode", "skip", "--reason", "x")
    assert problem in str(error.value) and error.value.returncode == 2
    assert not MaintenanceWindow.objects.exists()


def test_a_blank_reason_and_a_recurring_window_are_refused(manage_in_process):
    from django.core.management.base import CommandError

    make_task("tills")
    with pytest.raises(CommandError, match="give a reason"):
        manage_in_process("maintenance", "add", "--all", "--for", "1h", "--mode", "mute",
                          "--reason", "  ")  # fmt: skip
    window = recurring()
    with pytest.raises(CommandError, match="comes from the tasks file"):
        manage_in_process("maintenance", "end", str(window.pk))
    with pytest.raises(CommandError, match="no maintenance window 999"):
        manage_in_process("maintenance", "end", "999")


def test_opening_a_window_writes_the_audit_trail_on_the_window_and_each_task():
    from django.contrib.admin.models import LogEntry

    tills = make_task("tills")
    window = one_off()
    messages = list(LogEntry.objects.values_list("object_id", "change_message"))
    assert (str(window.pk), messages[0][1]) in messages
    assert any(oid == str(tills.pk) and "Maintenance window" in m for oid, m in messages)
    assert all("by manage.py maintenance" in m for _, m in messages)


# The tasks file ---------------------------------------------------------------------------------

TASKS_FILE = """
[tasks.tills]
command = ["true"]
schedule = "*/5 * * * *"
timeout = 30

[tasks.stock_sync]
command = ["true"]
timeout = 30

[windows.sunday_close]
start = "0 22 * * 0"
duration = "4h"
tasks = ["tills"]
mode = "skip"
reason = "tills are counted on Sunday night"
"""


def test_recurring_windows_are_synced_from_the_tasks_file_and_retired_when_gone(
    tmp_path, settings, monkeypatch
):
    path = tmp_path / "tasks.toml"
    path.write_text(TASKS_FILE)
    settings.CRONJOBS_TASKS_FILE = path
    monkeypatch.setattr("cronjobs.supervisor.sync.registry", Registry())
    assert sync_windows() == ["sunday_close"]
    window = MaintenanceWindow.objects.get(name="sunday_close")
    assert (window.start, window.duration, window.tasks, window.time_zone) == (
        "0 22 * * 0",
        14400,
        "tills",
        "UTC",
    )
    monkeypatch.setattr("cronjobs.supervisor.sync.registry", Registry())
    assert sync_windows() == []  # unchanged
    path.write_text(TASKS_FILE.replace('"4h"', '"3h"'))
    monkeypatch.setattr("cronjobs.supervisor.sync.registry", Registry())
    assert sync_windows() == ["sunday_close"]
    assert MaintenanceWindow.objects.get().duration == 10800
    path.write_text(TASKS_FILE.split("[windows")[0])
    monkeypatch.setattr("cronjobs.supervisor.sync.registry", Registry())
    assert sync_windows() == ["sunday_close"]
    assert MaintenanceWindow.objects.get().retired_at is not None
    assert windows.Calendar().windows == []


BAD_WINDOWS = """
[tasks.tills]
command = ["true"]
timeout = 30

[windows.bad_cron]
start = "0 25 * * 0"
duration = "4h"
tasks = ["tills"]
mode = "skip"
reason = "x"

[windows.bad_task]
start = "0 22 * * 0"
duration = "4h"
tasks = ["tils"]
mode = "skip"
reason = "x"

[windows.bad_duration]
start = "0 22 * * 0"
duration = "four hours"
tasks = ["tills"]
mode = "skip"
reason = "x"

[windows.bad_mode]
start = "0 22 * * 0"
duration = "4h"
tasks = "*"
mode = "pause"
reason = "x"

[windows.bad_zone]
start = "0 22 * * 0"
duration = "4h"
tasks = ["tills"]
mode = "mute"
reason = "x"
time_zone = "Mars/Olympus"
"""


@pytest.mark.django_db(transaction=True)
def test_manage_py_check_names_each_bad_window_and_what_is_wrong(manage, tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text(BAD_WINDOWS)
    result = manage("check", env_extra={"CRONJOBS_TASKS_FILE": str(path), "TIME_ZONE": "UTC"})
    assert result.returncode == 1
    out = result.stderr
    assert "window 'bad_cron': start: '0 25 * * 0' is not a valid cron expression" in out
    assert "window 'bad_task': tasks: unknown task 'tils' (known:" in out
    assert "window 'bad_duration': duration: 'four hours' is not a duration" in out
    assert "window 'bad_mode': mode: must be one of skip, mute" in out
    assert "window 'bad_zone': time_zone: 'Mars/Olympus' is not a time zone" in out


@pytest.mark.skipif(shutil.which("faketime") is None, reason="needs Debian's faketime")
@pytest.mark.django_db(transaction=True)
def test_the_tasks_files_sunday_window_skips_cron_runs_at_sunday_22_30(manage, tmp_path):
    """The runjob processes run at a faked Sunday evening (libfaketime), as cron starts them."""
    path = tmp_path / "tasks.toml"
    path.write_text(TASKS_FILE)
    extra = {"CRONJOBS_TASKS_FILE": str(path), "TIME_ZONE": "UTC", "TZ": "UTC"}
    assert manage("synctasks", env_extra=extra).returncode == 0

    def runjob_at(moment: str, *args: str) -> subprocess.CompletedProcess:
        argv = ["faketime", moment, *manage.argv("runjob", "tills", *args)]
        env = manage.env(extra)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    def evening(hours: int, minutes: int) -> str:
        return (SUNDAY.replace(hour=0) + timedelta(hours=hours, minutes=minutes)).strftime(
            "%Y-%m-%d %H:%M:%S"
        )

    assert runjob_at(evening(22, 30), "--trigger", "cron").returncode == 3
    assert runjob_at(evening(22, 35)).returncode == 0  # a person's run goes ahead
    assert runjob_at(evening(21, 55), "--trigger", "cron").returncode == 0  # before it
    assert runjob_at(evening(26, 0), "--trigger", "cron").returncode == 0  # after it
    rows = Execution.objects.filter(task__name="tills").order_by("started_at")
    assert [(r.status, r.skip_reason) for r in rows] == [
        ("succeeded", ""),
        ("skipped", "maintenance"),
        ("succeeded", ""),
        ("succeeded", ""),
    ]
    assert "tills are counted on Sunday night" in rows[1].error
    late = rows[1].started_at - (SUNDAY + timedelta(hours=1, minutes=30))
    assert timedelta(0) <= late < timedelta(minutes=1)
