"""The watchdog (supervisor/watchdog.py): late alerts against the schedule, travelled in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from cronjobs.models import Alert, Task
from cronjobs.supervisor.watchdog import check_late, grace_for, sweep
from tests.helpers import add_scheduled_tasks, make_execution, make_task, queries_of

pytestmark = pytest.mark.django_db
# 07:05 daily, read in UTC here; the task exists from the day before.
CREATED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SCHEDULED = datetime(2026, 11, 2, 7, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def utc(settings):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS_LATE_GRACE = 300


@pytest.fixture
def daily() -> Task:
    with time_machine.travel(CREATED, tick=False):
        task = make_task(
            "daily_products", schedule="5 7 * * *", timeout=600, max_attempts=3, retry_delay=60
        )
    Task.objects.exclude(pk=task.pk).update(enabled=False)  # only this one is watched
    return task


def test_grace_covers_every_attempt_and_delay(daily):
    assert grace_for(daily) == timedelta(seconds=3 * 600 + 2 * 60 + 300)


def test_not_late_within_the_grace(daily):
    with time_machine.travel(SCHEDULED + timedelta(minutes=30), tick=False):
        report = check_late()
    assert report["late"] == []
    assert not Alert.objects.exists()


def test_late_when_no_success_since_the_scheduled_run(daily):
    make_execution(daily, "succeeded", SCHEDULED - timedelta(days=1))  # yesterday's, not today's
    with time_machine.travel(SCHEDULED + timedelta(minutes=45), tick=False):
        report = check_late()
    assert report["late"] == ["daily_products"]
    alert = Alert.objects.get(task=daily, kind="late")
    assert alert.state == "open"
    assert "no successful run since the 2026-11-02 07:05 UTC run" in alert.message


def test_a_success_that_started_on_the_scheduled_second_is_on_time(daily):
    make_execution(daily, "succeeded", SCHEDULED)  # cron fired, and the attempt began, at 07:05:00
    with time_machine.travel(SCHEDULED + timedelta(minutes=45), tick=False):
        report = check_late()
    assert report == {"late": [], "on_time": ["daily_products"]}
    assert not Alert.objects.filter(kind="late").exists()


def test_success_resolves_late(daily):
    with time_machine.travel(SCHEDULED + timedelta(minutes=45), tick=False):
        check_late()
        make_execution(daily, "succeeded", SCHEDULED + timedelta(minutes=44))
        report = check_late()
    assert report["on_time"] == ["daily_products"]
    assert Alert.objects.get(task=daily, kind="late").state == "resolved"


def test_repeated_checks_count_occurrences_not_alerts(daily):
    for minutes in (45, 50, 55):
        with time_machine.travel(SCHEDULED + timedelta(minutes=minutes), tick=False):
            check_late()
    assert Alert.objects.get(task=daily, kind="late").occurrences == 3


def test_a_task_created_after_its_last_slot_is_not_late(daily):
    Task.objects.filter(pk=daily.pk).update(created_at=SCHEDULED + timedelta(minutes=1))
    with time_machine.travel(SCHEDULED + timedelta(hours=2), tick=False):
        assert check_late()["late"] == []


def test_disabled_and_manual_tasks_are_not_watched(daily):
    Task.objects.filter(pk=daily.pk).update(enabled=False)
    with time_machine.travel(SCHEDULED + timedelta(hours=2), tick=False):
        assert check_late() == {"late": [], "on_time": []}


def test_sweep_reports_abandoned_runs_too(daily):
    with time_machine.travel(SCHEDULED + timedelta(minutes=45), tick=False):
        report = sweep()
    assert report["abandoned_runs"] == 0
    assert report["late"] == ["daily_products"]


# --- catch-up --------------------------------------------------------------------------------


@pytest.fixture
def started():
    """What catch_up starts, by (task, trigger); the run itself is started for real in
    test_catch_up_starts_a_real_detached_run."""
    calls: list[tuple[str, str]] = []
    return calls


def sweep_catch_up(started, when):
    from cronjobs.supervisor.watchdog import catch_up

    with time_machine.travel(when, tick=False):
        return catch_up(start=lambda name, trigger, slot: started.append((name, trigger)))


@pytest.fixture
def catching(daily) -> Task:
    Task.objects.filter(pk=daily.pk).update(catch_up=True)
    return Task.objects.get(pk=daily.pk)


def test_a_missed_slot_is_caught_up_once_after_the_late_grace(catching, started):
    assert sweep_catch_up(started, SCHEDULED + timedelta(minutes=4)) == []  # within the grace
    assert sweep_catch_up(started, SCHEDULED + timedelta(minutes=6)) == ["daily_products"]
    assert started == [("daily_products", "catch_up")]
    assert Task.objects.get(pk=catching.pk).caught_up_slot == SCHEDULED
    # The next watchdog pass (or another host's) finds the slot claimed.
    assert sweep_catch_up(started, SCHEDULED + timedelta(minutes=11)) == []
    assert len(started) == 1


def test_a_slot_that_ran_is_not_caught_up(catching, started):
    make_execution(catching, "failed", SCHEDULED + timedelta(seconds=20))  # it ran, and failed
    assert sweep_catch_up(started, SCHEDULED + timedelta(minutes=30)) == []


def test_three_days_missed_start_one_run_for_the_latest_slot_only(catching, started):
    make_execution(catching, "succeeded", SCHEDULED - timedelta(days=1))
    later = SCHEDULED + timedelta(days=2, hours=3)  # 2, 3 and 4 November missed
    assert sweep_catch_up(started, later) == ["daily_products"]
    assert Task.objects.get(pk=catching.pk).caught_up_slot == SCHEDULED + timedelta(days=2)
    assert sweep_catch_up(started, later + timedelta(minutes=5)) == []
    assert started == [("daily_products", "catch_up")]


@pytest.mark.parametrize(
    "state",
    [
        {"enabled": False},
        {"catch_up": False},
        {"snoozed_until": SCHEDULED + timedelta(days=1)},
        "circuit_open",
    ],
    ids=["disabled", "not-declared", "snoozed", "circuit-open"],
)
def test_no_catch_up_while_disabled_snoozed_or_circuit_open(catching, started, state):
    from cronjobs.models import CircuitState

    if state == "circuit_open":
        CircuitState.objects.create(task=catching, state="open")
    else:
        Task.objects.filter(pk=catching.pk).update(**state)
    assert sweep_catch_up(started, SCHEDULED + timedelta(minutes=30)) == []
    assert started == []


def test_a_task_created_after_its_slot_is_not_caught_up(started):
    with time_machine.travel(SCHEDULED + timedelta(minutes=1), tick=False):
        make_task("newcomer", schedule="5 7 * * *", catch_up=True)
    assert sweep_catch_up(started, SCHEDULED + timedelta(minutes=30)) == []


def test_catch_up_queries_do_not_grow_with_the_number_of_tasks(
    catching, started, django_assert_max_num_queries
):
    with time_machine.travel(CREATED, tick=False):
        for n in range(40):
            task = make_task(f"other_{n}", schedule="5 7 * * *", catch_up=True)
            make_execution(task, "succeeded", SCHEDULED + timedelta(seconds=n))
    with django_assert_max_num_queries(4):  # tasks, latest starts, windows (a slot missed), claim
        assert sweep_catch_up(started, SCHEDULED + timedelta(minutes=30)) == ["daily_products"]


@pytest.mark.django_db(transaction=True)
def test_catch_up_starts_a_real_detached_run(manage):
    from django.utils import timezone

    from cronjobs.models import Execution
    from cronjobs.supervisor import runner
    from cronjobs.supervisor.watchdog import catch_up
    from tests.helpers import wait_for

    manage("synctasks")
    Task.objects.update(enabled=False)
    Task.objects.filter(name="test_succeed").update(
        enabled=True,
        schedule="5 7 * * *",
        catch_up=True,
        created_at=timezone.now() - timedelta(days=2),
    )
    task = Task.objects.get(name="test_succeed")

    def start(name: str, trigger: str, slot: datetime) -> str:
        return runner.start_in_background(name, trigger, env=manage.env(), slot=slot)

    assert catch_up(start=start) == ["test_succeed"]
    row = wait_for(
        lambda: Execution.objects.filter(task=task, status="succeeded").first(), timeout=60
    )
    assert row.trigger == "catch_up"
    # The run knows the slot it catches up, and how late it began after it.
    assert row.scheduled_for == Task.objects.get(pk=task.pk).claimed_slot
    assert row.start_lag is not None and row.start_lag > 0
    assert catch_up(start=start) == []


def test_a_sweep_queries_do_not_grow_with_the_number_of_tasks():
    """Every task on time (a success at its 07:05 slot): nothing to raise or resolve."""
    with time_machine.travel(datetime(2026, 6, 9, 9, 0, tzinfo=UTC), tick=False):
        add_scheduled_tasks(5, created_at=datetime(2026, 6, 1, tzinfo=UTC))
        few = queries_of(sweep)
        add_scheduled_tasks(55, created_at=datetime(2026, 6, 1, tzinfo=UTC))
        assert queries_of(sweep) == few
