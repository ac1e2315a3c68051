"""prune_history: old history goes, in primary-key batches with a pause between them; recent
history, running rows, rollups and the Prometheus tallies stay."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cronjobs.models import Alert, Execution, OutcomeTally, Rollup
from cronjobs.reporting import counters
from cronjobs.supervisor import pruning
from cronjobs.supervisor.pruning import prune
from tests.helpers import ago, make_alert, make_execution, make_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def history():
    task = make_task("old_job")
    for i in range(12):
        make_execution(task, "succeeded", ago(days=91 + i), run_id=f"old{i}")
    for i in range(3):
        make_execution(task, "failed", ago(days=i), run_id=f"new{i}")
    make_alert(task, "failed", state="resolved", message="old", resolved_at=ago(days=100))
    make_alert(task, "slow", message="open")
    return task


@pytest.fixture
def pauses(monkeypatch):
    """The seconds the pruner sleeps between batches, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(pruning, "sleep", slept.append)
    return slept


def deletes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]


def run_ids() -> list[str]:
    return sorted(Execution.objects.values_list("run_id", flat=True))


def test_prune_deletes_old_rows_in_batches(history, pauses):
    with CaptureQueriesContext(connection) as queries:
        counts = prune(days=90, batch_size=5, pause=0)
    assert counts == {"executions": 12, "alerts": 1}
    assert len(deletes(queries)) == 4  # 5 + 5 + 2 executions, 1 alert
    assert run_ids() == ["new0", "new1", "new2"]
    assert list(Alert.objects.values_list("message", flat=True)) == ["open"]


def test_every_delete_keeps_the_age_and_running_conditions(history, pauses):
    with CaptureQueriesContext(connection) as queries:
        prune(days=90, batch_size=5, pause=0)
    executions = [sql for sql in deletes(queries) if "cronjobs_execution" in sql]
    assert len(executions) == 3
    assert all("started_at" in sql and "status" in sql for sql in executions)


def test_pauses_between_batches_and_not_after_the_last(history, pauses):
    prune(days=90, batch_size=5, pause=0.25)
    assert pauses == [0.25, 0.25]  # three batches of executions; the one alert batch alone


def test_batches_stay_full_where_earlier_deletes_left_gaps_in_the_keys(pauses):
    task = make_task()
    rows = [make_execution(task, "succeeded", ago(days=200)) for _ in range(20)]
    Execution.objects.filter(pk__in=[row.pk for row in rows[::2]]).delete()
    with CaptureQueriesContext(connection) as queries:
        assert prune(days=90, batch_size=5, pause=0)["executions"] == 10
    assert len(deletes(queries)) == 2


def test_a_newer_row_with_a_lower_key_than_an_old_one_stays(pauses):
    """Rows arrive roughly in time order, not strictly: a spool replayed late, an import."""
    task = make_task()
    make_execution(task, "succeeded", ago(days=1), run_id="recent_first")
    make_execution(task, "succeeded", ago(days=120), run_id="old_later")
    make_execution(task, "succeeded", ago(days=2), run_id="recent_between")
    make_execution(task, "succeeded", ago(days=130), run_id="old_last")
    assert prune(days=90, batch_size=1, pause=0)["executions"] == 2
    assert run_ids() == ["recent_between", "recent_first"]


def test_running_rows_stay_however_old(pauses):
    task = make_task()
    make_execution(task, "running", ago(days=400), run_id="still_running")
    make_execution(task, "failed", ago(days=400), run_id="failed_long_ago")
    assert prune(days=90, batch_size=5, pause=0)["executions"] == 1
    assert run_ids() == ["still_running"]


def test_rollups_and_tallies_are_left_alone(history, pauses):
    """The 30-day figures and the Prometheus counters are read from these, not from history."""
    rollups = sorted(Rollup.objects.values_list("span", "start", "succeeded", "failed"))
    assert len(rollups) > 2  # the history's attempts were added to their hours and days
    before = counters.counts()
    assert prune(days=90, batch_size=5, pause=0)["executions"] > 0
    assert sorted(Rollup.objects.values_list("span", "start", "succeeded", "failed")) == rollups
    assert OutcomeTally.objects.exists() and counters.counts() == before


def test_the_prometheus_counters_keep_what_a_short_prune_deletes(pauses):
    """Rows are deleted only once the counters' tally has counted them: a one-day window
    keeps the last two days (cronjobs.history.FREEZE) rather than make the counters go back."""
    task = make_task()
    for days in (0.5, 1.5, 3):
        make_execution(task, "succeeded", ago(days=days))
    before = counters.counts()
    assert prune(days=1, batch_size=5, pause=0)["executions"] == 1  # the 3-day-old one
    assert counters.counts() == before == {(task.pk, "succeeded"): 3}


def test_nothing_to_prune_deletes_nothing_and_never_pauses(pauses):
    make_execution(make_task(), "succeeded", ago(days=3))
    with CaptureQueriesContext(connection) as queries:
        assert prune(days=90, batch_size=5, pause=1) == {"executions": 0, "alerts": 0}
    assert deletes(queries) == [] and pauses == []


def test_command_reports_counts_and_progress(history, pauses, capsys):
    call_command("prune_history", "--days", "90", "--batch-size", "5")
    out = capsys.readouterr().out
    assert "executions: 12 deleted, 100% of the old key range walked" in out
    assert "alerts: 1 deleted, 100% of the old key range walked" in out
    assert "deleted 12 execution(s) and 1 resolved alert(s) older than 90 days" in out


def test_command_pause_is_in_milliseconds(history, pauses):
    call_command("prune_history", "--batch-size", "5", "--pause", "250")
    assert pauses == [0.25, 0.25]


def test_command_pause_defaults_to_the_setting(history, pauses, settings):
    settings.CRONJOBS_PRUNE_PAUSE_MS = 40
    call_command("prune_history", "--batch-size", "5")
    assert pauses == [0.04, 0.04]


def test_command_pause_zero_runs_batches_back_to_back(history, pauses):
    call_command("prune_history", "--batch-size", "5", "--pause", "0")
    assert pauses == [0.0, 0.0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.5", "'0.5' is not a whole number of milliseconds"),
        ("soon", "'soon' is not a whole number of milliseconds"),
        ("-1", "-1 is not between 0 and 60000 ms"),
        ("60001", "60001 is not between 0 and 60000 ms"),
    ],
)
def test_command_rejects_a_bad_pause(history, value, message):
    with pytest.raises(CommandError, match=f"--pause: {message}"):
        call_command("prune_history", "--pause", value)
    assert Execution.objects.count() == 15  # nothing deleted


def test_command_rejects_a_zero_window():
    with pytest.raises(CommandError, match="--days must be at least 1"):
        call_command("prune_history", "--days", "0")


def test_command_rejects_a_zero_batch():
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        call_command("prune_history", "--batch-size", "0")
