"""manage.py seed_history: a demo history that looks alive, deterministic and replaceable."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import reverse

from cronjobs.models import Alert, CircuitState, Execution, Task
from cronjobs.supervisor import circuit
from demo import history
from tests.helpers import make_execution, make_task

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)


@pytest.fixture
def tasks():
    Task.objects.all().delete()
    with time_machine.travel(NOW, tick=False):
        yield [
            demo_task("generate_daily_products", schedule="5 7 * * *", timeout=600, priority=1),
            demo_task("refresh_store_stats", schedule="*/30 * * * *", timeout=180, priority=2),
            demo_task("generate_ai_insights", schedule="0 * * * *", timeout=600, priority=4),
        ]


def demo_task(name: str, **fields) -> Task:
    """A task of the demo's own, as synctasks leaves a Flagged Products job."""
    return make_task(name, target=f"flagged_products.jobs:{name}", **fields)


def test_history_follows_each_schedule_with_realistic_outcomes(tasks, capsys):
    call_command("seed_history", "--days", "14")

    assert "past executions of 3 task(s) over 14 days" in capsys.readouterr().out
    rows = Execution.objects.filter(host=history.HOST)
    daily = rows.filter(task=tasks[0], attempt__lte=1)
    assert 13 <= daily.count() <= 15  # once a day at 07:05
    assert all(r.started_at.minute == 5 for r in daily)
    stats_runs = rows.filter(task=tasks[1], attempt__lte=1).count()
    assert 14 * 48 - 10 <= stats_runs <= 14 * 48
    statuses = set(rows.values_list("status", flat=True))
    assert {"succeeded", "failed", "timed_out", "skipped"} <= statuses
    assert rows.filter(attempt=2, status="succeeded").exists()  # a retry that fixed it
    assert rows.filter(status="timed_out").count() == 1
    assert rows.filter(started_at__gt=NOW).count() == 0


def test_one_task_has_an_open_circuit_with_its_failures_and_alerts(tasks):
    call_command("seed_history")

    ai = tasks[2]
    state = CircuitState.objects.get(task=ai)
    assert state.state == "open" and NOW - state.opened_at < dt.timedelta(hours=1)
    last_hour = Execution.objects.filter(task=ai, started_at__gte=NOW - dt.timedelta(hours=1))
    assert last_hour.filter(status="failed").count() == 5
    open_kinds = set(Alert.objects.filter(task=ai, state="open").values_list("kind", flat=True))
    assert open_kinds == {"circuit_open", "failed"}
    assert circuit.consult(ai, "demo-check").allowed is False


def test_seeding_again_replaces_the_demo_rows_and_keeps_real_ones(tasks):
    real = make_execution(tasks[0], "succeeded", host="app1")
    call_command("seed_history", "--days", "3")
    first = list(Execution.objects.filter(host=history.HOST).values_list("run_id", "status"))
    call_command("seed_history", "--days", "3")

    again = list(Execution.objects.filter(host=history.HOST).values_list("run_id", "status"))
    assert again == first  # deterministic, and not doubled
    assert Execution.objects.filter(pk=real.pk).exists()
    assert Alert.objects.filter(state="open").count() == 2


def test_dashboard_shows_the_seeded_days(tasks, admin_client):
    call_command("seed_history", "--days", "14")
    page = admin_client.get(reverse("cronjobs-dashboard")).content.decode()
    assert page.count("execution/?started_at__year=") >= 14  # a trends row per day
    assert "5 failed attempts within 1 hour" in page


def test_without_tasks_it_says_to_sync_first():
    Task.objects.all().delete()
    with pytest.raises(CommandError, match="synctasks"):
        call_command("seed_history")


def test_tasks_you_declared_get_no_invented_history(tasks):
    command = make_task("disk_usage", kind=Task.Kind.COMMAND, target='["df", "-h", "/"]')
    other_app = make_task("nightly_export", target="shop.jobs:nightly_export")
    call_command("seed_history", "--days", "3")
    assert Execution.objects.filter(task=tasks[0]).exists()
    assert not Execution.objects.filter(task__in=[command, other_app]).exists()
    assert not Alert.objects.filter(task__in=[command, other_app]).exists()


def test_if_empty_leaves_a_history_that_has_any_row(tasks, capsys):
    call_command("seed_history", "--days", "3", "--if-empty")
    seeded = Execution.objects.count()
    assert seeded > 0
    make_execution(tasks[0], "succeeded", host="app1")  # a real run since
    call_command("seed_history", "--days", "3", "--if-empty")
    assert Execution.objects.count() == seeded + 1
    assert "left as it is" in capsys.readouterr().out


def test_each_failure_says_something_its_task_could_meet(tasks):
    call_command("seed_history", "--days", "14")
    failed = Execution.objects.filter(status="failed")
    errors = dict(failed.values_list("task__name", "error").distinct())
    assert errors  # some failures were seeded
    for name, error in failed.values_list("task__name", "error").distinct():
        assert error in history.ERRORS[name], (name, error)
    assert not failed.filter(task=tasks[2], error__contains="MySQL").exists()


def test_demo_alerts_notify_no_receiver(tasks, settings, mailoutbox):
    settings.ALERT_EMAILS = ["ops@example.com"]
    call_command("seed_history", "--days", "3")
    assert Alert.objects.filter(state=Alert.State.OPEN).exists()
    assert mailoutbox == []
