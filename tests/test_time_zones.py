"""Per-task `time_zone`: the installed line covers every UTC offset the zone takes, a cron call
runs only at a slot of the task's own zone, daylight saving follows docs/operations.md in two
zones, and the admin, the API, `runjob --list` and /metrics show the task's times."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from croniter import croniter
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from cronjobs import schedules
from cronjobs.models import Execution
from cronjobs.supervisor import crontab, slots
from cronjobs.supervisor.registry import build_spec
from cronjobs.tasksettings import TaskSpec
from tests.api_fixtures import client_for
from tests.helpers import make_execution, make_task

LONDON = """
[tasks.london]
command = ["sh", "-c", "echo day=${CRONJOBS_SCHEDULED_FOR%%T*}"]
schedule = "5 7 * * *"
time_zone = "Europe/London"
timeout = 10
max_attempts = 1
"""

JULY_SLOT = datetime(2026, 7, 1, 6, 5, tzinfo=UTC)  # 07:05 BST
JANUARY_SLOT = datetime(2026, 1, 15, 7, 5, tzinfo=UTC)  # 07:05 GMT


def spec(schedule: str, zone: str, **options) -> TaskSpec:
    declared = {"timeout": 10, "schedule": schedule, "time_zone": zone, **options}
    return build_spec("zoned", "command", ("true",), declared, "test")


@pytest.fixture
def utc_site(settings):
    settings.TIME_ZONE = "UTC"
    with timezone.override("UTC"):
        yield settings


@pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime is not installed")
@pytest.mark.django_db(transaction=True)
def test_london_task_on_a_utc_machine_runs_at_0705_london_in_july_and_january(manage, tmp_path):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(LONDON)
    env = manage.env(
        {"CRONJOBS_TASKS_FILE": str(tasks), "TIME_ZONE": "UTC", "TZ": "UTC", "CRONJOBS_HOST": "a"}
    )

    def cron_at(moment: datetime) -> subprocess.CompletedProcess[str]:
        fake = (moment + timedelta(seconds=3)).strftime("@%Y-%m-%d %H:%M:%S")
        argv = ["faketime", "-f", fake, *manage.argv("runjob", "london", "--trigger", "cron")]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    summer_wrong_hour = cron_at(JULY_SLOT + timedelta(hours=1))  # 08:05 in London
    assert summer_wrong_hour.returncode == 3
    assert "not a slot of '5 7 * * *' in Europe/London" in summer_wrong_hour.stderr
    winter_wrong_hour = cron_at(JANUARY_SLOT - timedelta(hours=1))  # 06:05 in London
    assert winter_wrong_hour.returncode == 3
    assert not Execution.objects.exists()  # no row for the other offset's hour

    # January first: a claim only moves forward, as the real clock does.
    for slot, day in ((JANUARY_SLOT, "2026-01-15"), (JULY_SLOT, "2026-07-01")):
        result = cron_at(slot)
        assert result.returncode == 0, result.stderr
        row = Execution.objects.get(scheduled_for=slot)
        assert row.status == "succeeded"
        assert f"day={day}" in row.output  # the job sees its slot on London's clock


def test_the_installed_line_fires_at_both_utc_hours_of_london(utc_site):
    london = spec("5 7 * * *", "Europe/London")
    line = crontab.line_for(london)
    assert line.startswith("5 6,7 * * * ")
    for moment in (JULY_SLOT, JANUARY_SLOT):
        assert croniter.match("5 6,7 * * *", moment.replace(tzinfo=None))
    assert crontab.line_for(spec("5 7 * * *", "")).startswith("5 7 * * * ")


@pytest.mark.parametrize(
    ("schedule", "zone", "covering"),
    [
        ("30 2 * * *", "America/New_York", "30 6,7 * * *"),
        ("*/15 * * * *", "Europe/London", "*/15 * * * *"),  # whole hours: every slot anyway
        ("0 23 * * 1-5", "Europe/London", "0 22,23 * * 1-5"),
        ("0 0 * * 1", "Europe/London", "0 0,23 * * *"),  # a slot crosses midnight: any day
        ("0 9 * * *", "Asia/Kolkata", "30 3 * * *"),  # half-hour offset, no daylight saving
    ],
)
def test_covering_lines_for_other_zones(utc_site, schedule, zone, covering):
    assert schedules.covering_expression(schedule, zone) == covering


@pytest.mark.parametrize(
    ("zone", "schedule", "moment", "slot"),
    [
        # London, clocks forward 29 March 01:00 GMT -> 02:00 BST: 01:30 does not exist; a
        # fixed-time job runs once when the clock lands at 02:00 BST (01:00 UTC).
        ("Europe/London", "30 1 * * *", "2026-03-29T01:00:05", "2026-03-29T01:00"),
        # London, clocks back 25 October 02:00 BST -> 01:00 GMT: a fixed-time job runs in the
        # first pass only (00:30 UTC); the second pass (01:30 UTC) is no slot.
        ("Europe/London", "30 1 * * *", "2026-10-25T00:30:05", "2026-10-25T00:30"),
        ("Europe/London", "30 1 * * *", "2026-10-25T01:30:05", None),
        # ... and a wildcard job runs in both passes.
        ("Europe/London", "30 * * * *", "2026-10-25T01:30:05", "2026-10-25T01:30"),
        # New York, clocks forward 8 March 02:00 EST -> 03:00 EDT: 02:30 runs at 03:00 EDT.
        ("America/New_York", "30 2 * * *", "2026-03-08T07:00:05", "2026-03-08T07:00"),
        ("America/New_York", "30 2 * * *", "2026-03-08T07:30:05", None),
        # New York, clocks back 1 November 02:00 EDT -> 01:00 EST: first pass only.
        ("America/New_York", "30 1 * * *", "2026-11-01T05:30:05", "2026-11-01T05:30"),
        ("America/New_York", "30 1 * * *", "2026-11-01T06:30:05", None),
        ("America/New_York", "*/30 * * * *", "2026-11-01T06:30:05", "2026-11-01T06:30"),
    ],
)
def test_daylight_saving_slots_in_two_zones(utc_site, zone, schedule, moment, slot):
    utc_site.CRONJOBS_SLOT_TOLERANCE = 60
    found = slots.find(spec(schedule, zone), datetime.fromisoformat(moment).replace(tzinfo=UTC))
    expected = datetime.fromisoformat(slot).replace(tzinfo=UTC) if slot else None
    assert found.slot == expected


@pytest.mark.django_db(transaction=True)
def test_check_rejects_an_unknown_zone(manage, tmp_path):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(LONDON.replace("Europe/London", "Europe/Atlantis"))
    result = manage("check", env_extra={"CRONJOBS_TASKS_FILE": str(tasks)})
    assert result.returncode != 0
    assert "time_zone" in result.stderr
    assert "'Europe/Atlantis' is not a time zone this machine knows" in result.stderr


NOW = datetime(2026, 7, 1, 5, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_the_api_shows_the_next_run_in_the_sites_zone_and_the_tasks(utc_site):
    api = client_for("read_only")
    make_task("london", schedule="5 7 * * *", time_zone="Europe/London")
    with time_machine.travel(NOW, tick=False):
        response = api.get("/api/tasks/london/")
    assert response.status_code == 200
    task = response.json()
    assert task["time_zone"] == "Europe/London"
    assert task["next_run"] == "2026-07-01T06:05:00+00:00"
    assert task["next_run_task_zone"] == "2026-07-01T07:05:00+01:00"


@pytest.mark.django_db
def test_the_admin_shows_the_next_run_in_both_zones(utc_site, admin_client):
    task = make_task("london", schedule="5 7 * * *", time_zone="Europe/London")
    with time_machine.travel(NOW, tick=False):
        page = admin_client.get(f"/admin/cronjobs/task/{task.pk}/change/").content.decode()
    assert "2026-07-01 06:05 UTC (07:05 Europe/London)" in page
    assert "At 07:05 AM (Europe/London)" in page


@pytest.mark.django_db(transaction=True)
def test_runjob_list_shows_the_next_run_in_both_zones(manage, tmp_path):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(LONDON)
    result = manage(
        "runjob", "--list", env_extra={"CRONJOBS_TASKS_FILE": str(tasks), "TIME_ZONE": "UTC"}
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("london"))
    assert "UTC (07:05 Europe/London)" in line
    assert result.stdout.splitlines()[0].split()[:5] == ["TASK", "KIND", "SCHEDULE", "NEXT", "RUN"]


@pytest.mark.django_db
def test_metrics_has_a_start_lag_histogram():
    api = client_for("read_only")
    task = make_task("lagging")
    now = timezone.now()
    for lag in (0.3, 0.8, 4.0, 45.0):
        slot = now - timedelta(minutes=10)
        make_execution(
            task, "succeeded", slot + timedelta(seconds=lag), scheduled_for=slot, start_lag=lag
        )
    make_execution(task, "succeeded", now - timedelta(minutes=5))  # manual: no lag
    response = api.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    samples = {
        (s.name, s.labels.get("le")): s.value
        for s in families["flagged_cron_start_lag_seconds_24h"].samples
        if s.labels["task"] == "lagging"
    }
    assert samples["flagged_cron_start_lag_seconds_24h_bucket", "0.5"] == 1
    assert samples["flagged_cron_start_lag_seconds_24h_bucket", "1.0"] == 2
    assert samples["flagged_cron_start_lag_seconds_24h_bucket", "5.0"] == 3
    assert samples["flagged_cron_start_lag_seconds_24h_bucket", "+Inf"] == 4
    assert samples["flagged_cron_start_lag_seconds_24h_count", None] == 4
    assert samples["flagged_cron_start_lag_seconds_24h_sum", None] == pytest.approx(50.1)
