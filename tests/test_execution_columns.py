"""An attempt's columns are declared once, by the model (`Execution.columns`): the spool, the
export, the metrics log line and the API's execution body each carry every column of
Execution except the ones they leave out on purpose, so a column added to the model reaches
all four, and a reader that lists columns by hand fails here."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from cronjobs.admin.resources import ExecutionResource
from cronjobs.models import Execution
from cronjobs.supervisor import runner, spool
from cronjobs.views.payloads import execution_dict
from tests.helpers import make_task

pytestmark = pytest.mark.django_db

COLUMNS = {field.name for field in Execution._meta.concrete_fields}
# What each reader leaves out; its reasons are written beside its list.
LEFT_OUT = {
    "spool": {"id"},
    "export": {"output", "traceback"},
    "metrics line": {"id", "output", "traceback"},
    "API body": {"id", "task", "output", "traceback"},
}
# A figure the metrics line and the API add beside the columns it comes from.
FIGURES = {"job_memory_bytes"}


def every_column_set() -> Execution:
    """A stopped downstream attempt with a value in every column, none of them a default."""
    started = dt.datetime(2026, 11, 2, 9, 0, 0, 123456, tzinfo=dt.UTC)
    row = Execution(
        run_id="d" * 32,
        task=make_task("digest"),
        attempt=2,
        status=Execution.Status.CANCELLED,
        trigger=Execution.Trigger.AFTER,
        skip_reason=Execution.SkipReason.OVERLAP,
        host="web-2",
        pid=4321,
        started_at=started,
        finished_at=started + dt.timedelta(seconds=7.5),
        duration=7.5,
        exit_code=-15,
        signal=15,
        peak_rss_bytes=200 << 20,
        memory_added_bytes=60 << 20,
        cpu_user=1.25,
        cpu_system=0.5,
        output="line one\nline two\n",
        output_bytes=18,
        error="stopped by alice",
        traceback="Traceback (most recent call last): ...",
        upstream_run_id="b" * 32,
        stopped_by="alice",
        scheduled_for=started - dt.timedelta(seconds=3),
        start_lag=2.75,
    )
    row.save()
    return row


def spool_keys(row: Execution) -> set[str]:
    spool.append(row.task.name, row)
    (line,) = spool.spool_path().read_text().splitlines()
    return set(json.loads(line))


def export_keys(row: Execution) -> set[str]:
    return set(ExecutionResource().export(Execution.objects.filter(pk=row.pk)).headers)


def metrics_keys(row: Execution) -> set[str]:
    columns = {key: name for name, key in runner.METRICS_KEYS.items()}
    record = runner.metrics_record(row.task.name, row)
    return {columns.get(key, key) for key in record} - FIGURES


def api_keys(row: Execution) -> set[str]:
    body = execution_dict(row)
    assert body is not None
    return set(body) - FIGURES


READERS = {
    "spool": spool_keys,
    "export": export_keys,
    "metrics line": metrics_keys,
    "API body": api_keys,
}


@pytest.mark.parametrize("reader", READERS)
def test_each_reader_carries_every_column_but_the_ones_it_leaves_out(reader):
    assert READERS[reader](every_column_set()) == COLUMNS - LEFT_OUT[reader]


def test_a_replayed_row_is_the_row_that_was_spooled():
    row = every_column_set()
    spool.append(row.task.name, row)
    Execution.objects.filter(pk=row.pk).delete()
    assert spool.replay() == 1
    replayed = Execution.objects.get(run_id=row.run_id)
    for name in COLUMNS - {"id"}:
        assert getattr(replayed, name) == getattr(row, name), name


def test_the_metrics_line_and_the_api_keep_their_names_for_seconds_and_times():
    row = every_column_set()
    record = runner.metrics_record("digest", row)
    assert (record["task"], record["duration_s"], record["cpu_user_s"]) == ("digest", 7.5, 1.25)
    assert record["started_at"] == "2026-11-02T09:00:00.123456+00:00"
    assert record["job_memory_bytes"] == 60 << 20
    body = execution_dict(row)
    assert body is not None
    # The keys the API had before it took the model's columns keep their order.
    before = [
        "run_id", "attempt", "status", "trigger", "started_at", "finished_at", "duration",
        "exit_code", "peak_rss_bytes", "memory_added_bytes", "job_memory_bytes", "error",
        "upstream_run_id", "stopped_by",
    ]  # fmt: skip
    assert [key for key in body if key in before] == before
    assert (body["duration"], body["stopped_by"], body["upstream_run_id"]) == (
        7.5,
        "alice",
        "b" * 32,
    )


def test_leaving_out_a_name_that_is_not_a_column_is_a_mistake():
    with pytest.raises(ValueError, match="not columns of Execution: stdout"):
        Execution.columns(leaving_out={"stdout": "renamed to output long ago"})
