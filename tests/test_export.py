"""cronjobs.admin.export: the streaming CSV path renders exactly what django-import-export would."""

from __future__ import annotations

import pytest

from cronjobs.admin.export import delimited_lines, export_rows
from cronjobs.admin.resources import AlertResource, ExecutionResource
from cronjobs.models import Execution
from tests.helpers import ago, make_alert, make_execution, make_task

pytestmark = pytest.mark.django_db


def test_fast_path_matches_the_resources_own_rendering(monkeypatch):
    monkeypatch.setattr("cronjobs.admin.resources.KEYSET_CHUNK", 3)
    task = make_task("rendered")
    for minutes, status in enumerate(("succeeded", "failed", "skipped", "running", "timed_out")):
        error = 'x, "quoted"\nsecond line' if status == "failed" else ""
        make_execution(task, status, ago(minutes=minutes), peak_rss_bytes=123, error=error)
    make_execution(task, "succeeded", ago(minutes=9), duration=None, finished_at=None)
    make_execution(task, "succeeded", ago(minutes=11), duration=0.1 + 0.2, cpu_user=1e-7)
    queryset = Execution.objects.all()

    fast = list(export_rows(ExecutionResource(), queryset, None))
    library = ExecutionResource().export(queryset)

    # The CSV writer turns values into text; the library hands it text already.
    assert [[str(value) for value in row] for row in fast] == [list(row) for row in library]
    assert len(fast) == 7


def test_only_selected_columns_in_the_resources_order():
    task = make_task("picked")
    row = make_execution(task, "failed", error="boom")
    (values,) = export_rows(ExecutionResource(), Execution.objects.all(), ["error", "run_id"])
    assert values == [row.run_id, "boom"]


def test_a_resource_without_a_fast_path_uses_its_own_rendering(admin_user):
    from cronjobs.models import Alert

    alert = make_alert(
        make_task("alerting"), "slow", message="took long", acknowledged_by=admin_user
    )
    (values,) = export_rows(AlertResource(), Alert.objects.all(), ["task", "acknowledged_by"])
    assert values == ["alerting", admin_user.username]
    assert alert.pk


def test_delimited_lines_quote_and_chunk():
    pieces = list(delimited_lines(["a", "b"], ([i, f"x,{i}"] for i in range(3)), ","))
    assert "".join(pieces) == 'a,b\r\n0,"x,0"\r\n1,"x,1"\r\n2,"x,2"\r\n'
