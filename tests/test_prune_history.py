"""prune_history: old history goes, in batches; recent history and running rows stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cronjobs.models import Alert, Execution
from cronjobs.supervisor.pruning import prune
from cronjobs.supervisor.registry import build_spec
from cronjobs.supervisor.sync import sync_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def history():
    task = sync_task(build_spec("old_job", "command", ("true",), {"timeout": 5}, "test"))
    now = timezone.now()
    old = [Execution(run_id=f"old{i}", task=task, status="succeeded",
                     started_at=now - timedelta(days=91 + i)) for i in range(12)]  # fmt: skip
    new = [Execution(run_id=f"new{i}", task=task, status="failed",
                     started_at=now - timedelta(days=i)) for i in range(3)]  # fmt: skip
    Execution.objects.bulk_create([*old, *new])
    Alert.objects.create(task=task, kind="failed", message="old", state="resolved",
                         resolved_at=now - timedelta(days=100))  # fmt: skip
    Alert.objects.create(task=task, kind="slow", message="open", open_key=f"{task.pk}:slow")
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
