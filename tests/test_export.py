"""cronjobs.admin.export: the streaming CSV path renders exactly what django-import-export would."""

from __future__ import annotations

import io
import json

import pytest

from cronjobs.admin.export import delimited_lines, export_rows, neutralise
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


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+2", "'=1+2"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-12.5", "-12.5"),
        ("1e-07", "1e-07"),
        ("ok = fine", "ok = fine"),
        (-3, -3),
        (None, None),
    ],
)
def test_neutralise_prefixes_what_a_spreadsheet_would_run(cell, shown):
    assert neutralise(cell) == shown


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["csv", "tsv", "xlsx", "json"])
def test_exports_of_a_formula_are_inert(admin_client, fmt):
    """An attempt whose error text is a formula, exported as an operator would: the cell reads
    '=1+2 and, in XLSX, is a text cell rather than a formula."""
    import openpyxl

    from tests.test_admin_executions import export

    make_execution(make_task("nightly"), "failed", error="=1+2", host="@evil")
    response = export(admin_client, fmt=fmt)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    if fmt == "xlsx":
        sheet = openpyxl.load_workbook(io.BytesIO(body)).active
        cells = {cell.value: cell.data_type for row in sheet.iter_rows() for cell in row}
        assert cells["'=1+2"] == "s" and cells["'@evil"] == "s"
        assert "=1+2" not in cells and "f" not in cells.values()
    elif fmt == "json":
        (row,) = json.loads(body)
        assert row["error"] == "'=1+2" and row["host"] == "'@evil"
    else:
        text = body.decode()
        assert "'=1+2" in text and "'@evil" in text
        assert "\n=1+2" not in text and ",=1+2" not in text and "\t=1+2" not in text
