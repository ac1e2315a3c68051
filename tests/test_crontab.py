"""`manage.py crontab add|show|remove|check` against Debian's real crontab and cron daemon.

Root's own crontab is saved before and restored after every test. Each test uses its own
marker, so lines of a real installation of this checkout are foreign lines here.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from datetime import datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from cronjobs.models import Execution
from cronjobs.schedules import system_time_zone
from cronjobs.supervisor.crontab import CRON_PIDFILES, crontab_status, daemon_running, read_crontab
from cronjobs.supervisor.registry import registry
from tests.helpers import ROOT, database_url, wait_for

pytestmark = pytest.mark.cron

CRON_MISSING = "needs Debian's cron and crontab: apt-get install cron"
FOREIGN = "17 4 * * * /usr/local/bin/backup --quiet # the user's own line\n"

TASKS = """
[tasks.cron_touch]
command = ["{touch}", "{marker}"]
schedule = "{schedule}"
timeout = 30
max_attempts = 1

[tasks.cron_fails]
command = ["/bin/sh", "-c", "exit 4"]
schedule = "0 0 1 1 *"
timeout = 30
max_attempts = 1
retry_delay = 0
"""


def require_cron() -> None:
    if shutil.which("crontab") and shutil.which("cron"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but cron is missing: {CRON_MISSING}")
    pytest.skip(CRON_MISSING)


@pytest.fixture
def saved_crontab():
    """Root's crontab as it was, put back afterwards whatever the test did."""
    require_cron()
    before = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    yield
    if before.returncode == 0:
        subprocess.run(["crontab", "-"], input=before.stdout, text=True, check=True)
    else:
        subprocess.run(["crontab", "-r"], capture_output=True)


@pytest.fixture
def tasks_file(tmp_path, settings, job_dir):
    """A TOML tasks file with a task that leaves a marker and one that fails, both due once a
    year (only the end-to-end test makes one fire); the registry is reloaded with it, and
    without it afterwards."""
    path = tmp_path / "cronjobs.toml"
    original = settings.CRONJOBS_TASKS_FILE

    def write(schedule: str = "0 0 1 1 *", extra: str = "") -> Path:
        touch = shutil.which("touch")
        text = TASKS.format(touch=touch, marker=job_dir / "marker-cron", schedule=schedule)
        path.write_text(text + extra)
        registry.load(force=True)
        return path

    settings.CRONJOBS_TASKS_FILE = path
    write()
    yield write
    settings.CRONJOBS_TASKS_FILE = original
    registry.load(force=True)


@pytest.fixture
def cron_settings(settings, tmp_path, log_dir, job_dir, tasks_file):
    """Lines for this test only: its own marker, the test settings and the test database."""
    settings.TIME_ZONE = system_time_zone()
    settings.CRONTAB_COMMENT = f"flagged-cron test {tmp_path.name}"
    settings.CRONTAB_DJANGO_SETTINGS_MODULE = "tests.settings"
    env = {
        "DATABASE_URL": database_url(),
        "LOG_DIR": str(log_dir),
        "CRONJOBS_TASKS_FILE": str(settings.CRONJOBS_TASKS_FILE),
        "FC_TEST_DIR": str(job_dir),
    }
    settings.CRONTAB_COMMAND_PREFIX = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return settings


def crontab(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("crontab", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def installed() -> str:
    return subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout


def our_lines(settings) -> list[str]:
    return [line for line in installed().splitlines() if settings.CRONTAB_COMMENT in line]


def line_of(task: str, settings) -> str:
    (line,) = [line for line in our_lines(settings) if line.endswith(f": {task}")]
    return line


def as_cron_runs(line: str) -> str:
    """The command part of a line, the way cron hands it to /bin/sh."""
    return line.split(maxsplit=5)[5].replace(r"\%", "%")


# The test tasks are due at 00:00 on 1 January: a line run by hand at any other moment is at no
# slot of its task and exits 3 without a row (cronjobs/supervisor/slots.py). cron would start it
# at that minute; libfaketime sets the clock there (the kernel's process start stays real, so
# slots.process_started falls back to the faked now).
AT_ITS_SLOT = ("DONT_FAKE_MONOTONIC=1", "/usr/bin/faketime", "-f", "@2027-01-01 00:00:05")


def fired_by_cron(line: str) -> list[str]:
    """argv running a line's command as cron would at its slot: an empty environment, /bin/sh."""
    if not os.path.exists(AT_ITS_SLOT[1]):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but faketime is missing: bin/system-deps test installs it")
        pytest.skip("needs Debian's faketime: apt-get install faketime")
    return ["env", "-i", *AT_ITS_SLOT, "/bin/sh", "-c", as_cron_runs(line)]


@pytest.mark.usefixtures("saved_crontab")
def test_add_per_task_installs_one_readable_runjob_line_per_scheduled_task(cron_settings):
    out, _ = crontab("add", "--per-task")
    line = line_of("cron_touch", cron_settings)
    assert line.startswith(f"0 0 1 1 * cd {ROOT} && ")
    command = f"{sys.executable} {ROOT / 'manage.py'} runjob cron_touch --trigger cron"
    assert f" {command} --settings=tests.settings >> " in line
    assert f">> {cron_settings.LOG_DIR / 'cron-stdout.log'} 2>&1" in line
    assert "crontab run" not in line
    assert "adding cronjob: cron_touch" in out
    names = {line.rsplit(": ", 1)[1] for line in our_lines(cron_settings)}
    assert "cron_fails" in names and "heartbeat" in names
    assert "test_succeed" not in names  # declared without a schedule: run by hand only


@pytest.mark.usefixtures("saved_crontab")
def test_add_twice_and_after_a_schedule_change_keeps_one_line_and_foreign_lines(
    cron_settings, tasks_file
):
    other_checkout = "0 1 * * * cd /srv/other && ./run # django-cronjobs for other: cron_touch\n"
    subprocess.run(["crontab", "-"], input=FOREIGN + other_checkout, text=True, check=True)
    crontab("add", "--per-task")
    crontab("add", "--per-task")
    tasks_file(schedule="30 4 1 1 *")
    crontab("add", "--per-task")
    assert line_of("cron_touch", cron_settings).startswith("30 4 1 1 * cd ")
    assert len(our_lines(cron_settings)) == len(set(our_lines(cron_settings)))
    assert installed().startswith(FOREIGN + other_checkout)


@pytest.mark.usefixtures("saved_crontab")
def test_add_installs_the_hosts_one_dispatcher_line(cron_settings):
    subprocess.run(["crontab", "-"], input=FOREIGN, text=True, check=True)
    out, _ = crontab("add")
    (line,) = our_lines(cron_settings)
    assert line.startswith(f"* * * * * cd {ROOT} && ")
    command = f"{sys.executable} {ROOT / 'manage.py'} runjob --due --settings=tests.settings"
    assert f" {command} >> {cron_settings.LOG_DIR / 'cron-stdout.log'} 2>&1 # " in line
    assert line.endswith(f"# {cron_settings.CRONTAB_COMMENT}: runjob --due")
    scheduled = len([spec for spec in registry.by_priority() if spec.enabled and spec.schedule])
    assert f"adding cronjob: runjob --due (every minute, for {scheduled} scheduled tasks)" in out
    crontab("add")  # again: still one line, the user's kept
    assert installed() == FOREIGN + line + "\n"
    assert crontab_status().ok


@pytest.mark.usefixtures("saved_crontab")
def test_check_compares_with_the_kind_of_lines_installed(cron_settings):
    crontab("add", "--per-task")
    assert crontab_status().ok  # per-task lines, all there
    crontab("add")
    assert crontab_status().ok  # now the dispatcher's line alone
    crontab("add", "--per-task")
    touch = line_of("cron_touch", cron_settings)
    crontab("add")
    subprocess.run(["crontab", "-"], input=installed() + touch + "\n", text=True, check=True)
    status = crontab_status()
    assert (status.missing, status.stale, status.extra) == ((), (), ("cron_touch",))
    subprocess.run(["crontab", "-r"], check=False)
    assert crontab_status().missing == ("runjob --due",)


@pytest.mark.usefixtures("saved_crontab")
def test_show_with_the_dispatcher_line_gives_every_tasks_schedule_in_words(cron_settings):
    crontab("add")
    out, _ = crontab("show")
    assert f"runjob --due: {our_lines(cron_settings)[0]}" in out
    assert "cron_touch: 0 0 1 1 *: At 12:00 AM, on day 1 of the month, only in January" in out


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("saved_crontab")
def test_the_dispatcher_line_fired_by_cron_runs_each_due_task_once(cron_settings, job_dir):
    crontab("add")
    (line,) = our_lines(cron_settings)
    dispatcher = subprocess.run(fired_by_cron(line), cwd="/", timeout=120)
    assert dispatcher.returncode == 0
    done = Execution.objects.filter(trigger="cron", task__name__in=["cron_fails", "cron_touch"])
    wait_for(lambda: done.exclude(status="running").count() == 2, timeout=60, interval=0.2)
    assert sorted(done.values_list("task__name", "status")) == [
        ("cron_fails", "failed"),
        ("cron_touch", "succeeded"),
    ]
    assert (job_dir / "marker-cron").exists()
    log = cron_settings.LOG_DIR / "cron-stdout.log"
    # Each supervisor writes its summary line once its run is recorded: it may come a moment
    # after the row.
    wait_for(lambda: "cron_touch: succeeded" in log.read_text(), timeout=30, interval=0.2)
    assert " run(s) on " in log.read_text()


@pytest.mark.usefixtures("saved_crontab")
def test_show_lists_this_checkouts_lines_by_task(cron_settings):
    crontab("add", "--per-task")
    out, _ = crontab("show")
    assert f"cron_touch: {line_of('cron_touch', cron_settings)}" in out


@pytest.mark.usefixtures("saved_crontab")
def test_remove_takes_out_only_this_checkouts_lines(cron_settings):
    subprocess.run(["crontab", "-"], input=FOREIGN, text=True, check=True)
    crontab("add", "--per-task")
    out, _ = crontab("remove")
    assert "removing cronjob: cron_touch" in out
    assert installed() == FOREIGN


@pytest.mark.usefixtures("saved_crontab")
def test_check_says_up_to_date_and_exits_0(cron_settings):
    crontab("add")
    out, _ = crontab("check")
    assert "up to date" in out
    assert crontab_status().ok


@pytest.mark.usefixtures("saved_crontab")
def test_check_names_missing_stale_and_extra_tasks_and_exits_1(cron_settings, tasks_file):
    crontab("add", "--per-task")
    added = '\n[tasks.cron_new]\ncommand = ["true"]\nschedule = "0 9 * * 1"\ntimeout = 5\n'
    tasks_file(schedule="45 4 1 1 *", extra=added)  # cron_touch changes, cron_new appears
    subprocess.run(
        ["crontab", "-"],
        input=installed()
        + line_of("heartbeat", cron_settings).replace(": heartbeat", ": gone_task")
        + "\n",
        text=True,
        check=True,
    )
    with pytest.raises(SystemExit) as exit_info:
        crontab("check")
    assert exit_info.value.code == 1
    status = crontab_status()
    assert (status.missing, status.stale, status.extra) == (
        ("cron_new",),
        ("cron_touch",),
        ("gone_task",),
    )
    assert "not installed: cron_new" in status.messages()
    assert "installed with an old line: cron_touch" in status.messages()
    assert "installed but no longer scheduled: gone_task" in status.messages()


@pytest.mark.usefixtures("saved_crontab")
def test_add_refuses_when_time_zone_differs_from_the_system_zone(cron_settings):
    system = system_time_zone()
    cron_settings.TIME_ZONE = "Pacific/Auckland" if system != "Pacific/Auckland" else "UTC"
    subprocess.run(["crontab", "-"], input=FOREIGN, text=True, check=True)
    with pytest.raises(CommandError) as refused:
        crontab("add")
    message = str(refused.value)
    assert cron_settings.TIME_ZONE in message and system in message
    assert f"TIME_ZONE={system}" in message and "timedatectl set-timezone" in message
    assert installed() == FOREIGN
    with pytest.raises(SystemExit):
        crontab("check")
    status = crontab_status()
    assert any("CRON_TZ" in problem for problem in status.problems)
    assert not any("crontab add" in message for message in status.messages())  # it would refuse


@pytest.mark.parametrize(
    ("schedule", "why"),
    [
        ("61 * * * *", "is not a valid cron expression"),
        ("0 0 L * *", "uses 'L', which Debian's cron does not understand"),
        ("0 0 * * * *", "has 6 fields; cron takes 5"),
    ],
)
@pytest.mark.usefixtures("saved_crontab")
def test_add_refuses_a_task_with_a_schedule_cron_cannot_read_and_names_it(
    cron_settings, tasks_file, schedule, why
):
    subprocess.run(["crontab", "-"], input=FOREIGN, text=True, check=True)
    tasks_file(schedule=schedule)
    with pytest.raises(CommandError) as refused:
        crontab("add")
    assert f"task 'cron_touch': schedule: '{schedule}' {why}" in str(refused.value)
    assert installed() == FOREIGN


def test_without_a_crontab_binary_add_says_to_install_cron(settings):
    settings.TIME_ZONE = system_time_zone()
    settings.CRONTAB_EXECUTABLE = "/nonexistent/bin/crontab"
    with pytest.raises(CommandError, match=r"apt-get install cron"):
        crontab("add")
    assert "apt-get install cron" in crontab_status().error


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("saved_crontab")
def test_installed_lines_keep_the_exit_status_under_an_empty_environment(cron_settings, job_dir):
    crontab("add", "--per-task")
    failing = subprocess.run(
        fired_by_cron(line_of("cron_fails", cron_settings)),
        cwd="/",
        timeout=120,
    )
    assert failing.returncode == 1  # runjob's "failed", not django-crontab's swallowed 0
    working = subprocess.run(
        fired_by_cron(line_of("cron_touch", cron_settings)),
        cwd="/",
        timeout=120,
    )
    assert working.returncode == 0
    assert (job_dir / "marker-cron").exists()
    runs = Execution.objects.filter(trigger="cron").values_list("task__name", "status")
    assert sorted(runs) == [("cron_fails", "failed"), ("cron_touch", "succeeded")]
    assert "cron_fails" in (cron_settings.LOG_DIR / "cron-stdout.log").read_text()


@pytest.fixture
def cron_daemon():
    """Starts Debian's cron unless it already runs; stops it afterwards if it started it.
    Call it after installing: cron notices a change by the spool's mtime in whole seconds,
    so a crontab written in the second the daemon first read the spool would go unseen."""
    require_cron()
    started = []

    def start() -> None:
        if not daemon_running():
            subprocess.run([shutil.which("cron")], check=True)  # daemonizes, writes a pid file
            started.append(wait_for(_live_pid, timeout=10, interval=0.1, what="cron's pid file"))

    yield start
    for pid in started:
        os.kill(pid, signal.SIGTERM)


def _live_pid() -> int | None:
    """The new daemon's pid: its pid file may still hold a dead predecessor's for a moment."""
    for pidfile in CRON_PIDFILES:
        text = Path(pidfile).read_text().strip() if Path(pidfile).exists() else ""
        if text.isdigit() and Path(f"/proc/{text}").exists():
            return int(text)
    return None


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("saved_crontab")
def test_cron_daemon_runs_a_due_task_through_the_dispatcher_line_within_75_seconds(
    cron_settings, tasks_file, job_dir, cron_daemon
):
    tasks_file(schedule="* * * * *")
    clear_of_cron_spool_check()
    crontab("add")
    assert [line.rsplit(": ", 1)[1] for line in our_lines(cron_settings)] == ["runjob --due"]
    cron_daemon()
    runs = Execution.objects.filter(task__name="cron_touch", trigger="cron")
    wait_for(
        runs.exists, timeout=75, interval=0.5, what=lambda: f"a cron run; {cron_log(cron_settings)}"
    )
    # A loaded machine may take a while to start Django; the row is there, let it finish.
    done = runs.exclude(status=Execution.Status.RUNNING)
    wait_for(
        done.exists,
        timeout=60,
        interval=0.5,
        what=lambda: f"the cron run to end; {cron_log(cron_settings)}",
    )
    assert done.get().status == Execution.Status.SUCCEEDED
    assert (job_dir / "marker-cron").exists()


def clear_of_cron_spool_check() -> None:
    """A running cron re-reads the spool when its mtime (whole seconds) changed, just after
    each minute starts; a crontab written in that same second would go unseen."""
    wait_for(lambda: datetime.now().second not in (59, 0, 1, 2), timeout=10, interval=0.2)


def cron_log(settings) -> str:
    log = settings.LOG_DIR / "cron-stdout.log"
    return (
        f"cron-stdout.log: {log.read_text() if log.exists() else '(none)'}; crontab: {installed()}"
    )


def test_status_reads_the_real_crontab(saved_crontab, cron_settings):
    subprocess.run(["crontab", "-"], input=FOREIGN, text=True, check=True)
    assert read_crontab() == [FOREIGN]
    assert crontab_status().missing == ("runjob --due",)  # nothing of ours: the default line


@pytest.fixture
def shell_only_database(cron_settings):
    """The test database is this process's (as if the shell exported DATABASE_URL) but the
    lines' own assignments do not name it: cron would use the default SQLite file."""
    cron_settings.CRONTAB_COMMAND_PREFIX = " ".join(
        word
        for word in shlex.split(cron_settings.CRONTAB_COMMAND_PREFIX)
        if not word.startswith("DATABASE_URL=")
    )
    return cron_settings


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("saved_crontab")
def test_add_refuses_a_database_url_cron_would_not_see_and_leaves_the_crontab(
    shell_only_database,
):
    subprocess.run(["crontab", "-"], input=FOREIGN, text=True, check=True)
    with pytest.raises(CommandError) as refused:
        crontab("add")
    message = str(refused.value)
    assert "DATABASE_URL differs under cron" in message
    assert "cron would have sqlite3://" in message and "db.sqlite3" in message
    assert "put it in .env" in message and "--env-file PATH" in message
    assert "LOG_DIR" not in message  # the settings that agree are not named
    assert installed() == FOREIGN
    with pytest.raises(SystemExit):
        crontab("check")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("saved_crontab")
def test_add_with_an_env_file_installs_lines_that_load_it(shell_only_database, tmp_path, job_dir):
    env_file = tmp_path / "cron.env"
    env_file.write_text(f"DATABASE_URL={database_url()}\n")
    out, _ = crontab("add", "--per-task", "--env-file", str(env_file))
    assert "adding cronjob: cron_touch" in out
    line = line_of("cron_touch", shell_only_database)
    assert f"CRONJOBS_ENV_FILE={env_file}" in line
    assert "DATABASE_URL" not in line  # the setting stays in the file
    ran = subprocess.run(fired_by_cron(line), cwd="/", timeout=120)
    assert ran.returncode == 0
    assert Execution.objects.get(task__name="cron_touch").trigger == "cron"  # this database


@pytest.mark.django_db
@pytest.mark.usefixtures("saved_crontab")
def test_add_refuses_a_secret_in_the_command_prefix(cron_settings):
    cron_settings.CRONTAB_COMMAND_PREFIX += " SECRET_KEY=abc123"
    with pytest.raises(CommandError, match=r"sets SECRET_KEY with a secret in it"):
        crontab("add")


@pytest.mark.usefixtures("saved_crontab")
def test_add_with_a_missing_env_file_is_a_usage_error(cron_settings, tmp_path):
    before = installed()
    with pytest.raises(CommandError, match=r"--env-file: no file at .*/absent.env") as refused:
        crontab("add", "--env-file", str(tmp_path / "absent.env"))
    assert refused.value.returncode == 2
    assert installed() == before
