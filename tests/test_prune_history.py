"""prune_history: old history goes, in batches; recent history and running rows stay."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cronjobs.models import Alert, Execution
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


def test_prune_deletes_old_rows_in_batches(history):
    with CaptureQueriesContext(connection) as queries:
        counts = prune(days=90, batch_size=5)
    assert counts == {"executions": 12, "alerts": 1}
    deletes = [q for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 4  # 5 + 5 + 2 executions, 1 alert
    assert sorted(Execution.objects.values_list("run_id", flat=True)) == ["new0", "new1", "new2"]
    assert list(Alert.objects.values_list("message", flat=True)) == ["open"]


def test_command_reports_counts(history, capsys):
    call_command("prune_history", "--days", "90")
    assert "deleted 12 execution(s) and 1 resolved alert(s) older than 90 days" in (
        capsys.readouterr().out
    )


def test_command_rejects_a_zero_window():
    with pytest.raises(CommandError, match="--days must be at least 1"):
        call_command("prune_history", "--days", "0")
