"""No attempt is ever lost (docs/operations.md, "Spool"): when the database cannot be reached to
record a result, the row goes to LOG_DIR/spool.jsonl, and the next `runjob` replays the file into
the database before doing anything else. Replay is idempotent: rows are keyed by (run_id, attempt),
so replaying twice, or two processes replaying at once, creates no duplicates. An exclusive flock on
the file keeps appends and the replay-then-truncate from interleaving.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError

from cronjobs import history
from cronjobs.models import Execution, Task
from cronjobs.supervisor import alerts, logs
from cronjobs.supervisor.registry import registry
from cronjobs.supervisor.sync import sync_task

log = logging.getLogger(__name__)

# Every column, so a replayed attempt is the attempt that was spooled.
COLUMNS = Execution.columns(
    leaving_out={
        "id": "the database numbers the row; the replay finds it by (run_id, attempt)",
        "task": "spooled as the task's name, since the replay may have to mirror the task first",
    }
)


def spool_path() -> Path:
    return logs.log_dir() / "spool.jsonl"


@contextlib.contextmanager
def _locked(mode: str) -> Iterator[Any]:
    with open(spool_path(), mode, encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def append(task_name: str, row: Execution) -> None:
    record = {name: _jsonable(getattr(row, name)) for name in COLUMNS}
    record["task"] = task_name
    with _locked("a") as fh:
        fh.write(json.dumps(record) + "\n")
    logs.write("WARNING", task_name, f"run={row.run_id[:8]} attempt {row.attempt} spooled")


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def pending() -> int:
    path = spool_path()
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def replay() -> int:
    """Write spooled rows to the database and empty the file. Rows that cannot be written yet
    (database still down, task unknown) stay in the file. Returns rows written."""
    path = spool_path()
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with _locked("r+") as fh:
        lines = [line for line in fh.read().splitlines() if line.strip()]
        kept, written = [], []
        for line in lines:
            try:
                written.append(_write(json.loads(line)))
            except (DatabaseError, ValidationError, ValueError, KeyError) as exc:
                log.warning("spooled row not replayed yet: %s", exc)
                kept.append(line)
        fh.seek(0)
        fh.truncate()
        fh.writelines(line + "\n" for line in kept)
    _raise_outage(written)
    return len(written)


def _raise_outage(rows: list[Execution]) -> None:
    """One `outage` alert for the whole replay (hosts, first and last spooled time, tasks)."""
    if not rows:
        return
    times = [row.started_at for row in rows]
    alerts.raise_outage(
        hosts=sorted({row.host for row in rows if row.host}) or ["an unknown host"],
        first=min(times),
        last=max(times),
        tasks=sorted({row.task.name for row in rows}),
        attempts=len(rows),
    )


def _write(record: dict[str, Any]) -> Execution:
    task = Task.objects.filter(name=record["task"]).first()
    if task is None:  # the database was down before the task was ever mirrored
        spec = registry.get(record["task"])
        if spec is None:
            raise KeyError(f"task {record['task']!r} is neither in the database nor declared")
        task = sync_task(spec)
    # A column the record lacks (spooled by an older version) keeps its default.
    fields = {field.name: field for field in Execution._meta.concrete_fields}
    values = {name: fields[name].to_python(record[name]) for name in COLUMNS if name in record}
    # A row recorded before the outage (its attempt started, then the database went) is
    # finished over; history.save takes out what a row replayed before had added already.
    row = Execution.objects.filter(run_id=values["run_id"], attempt=values["attempt"]).first()
    row = row or Execution()
    for field, value in {**values, "task": task}.items():
        setattr(row, field, value)
    history.save(row)
    return row
