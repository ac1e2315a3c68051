"""LegacyMetricsResource: how a Smart Cron V2 metrics export maps onto executions, for the
admin's Import button (django-import-export) and `manage.py import_legacy_metrics`
(cronjobs/legacy/history.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable
from typing import Any

from django.utils import timezone
from import_export import fields, resources, widgets

from cronjobs import history
from cronjobs.legacy import modern_name
from cronjobs.models import Execution, Task
from cronjobs.tasksettings import NAME_RE

LEGACY_HOST = "legacy"


class RowError(ValueError):
    """A V2 row that cannot be imported; names the column."""

    def __init__(self, column: str, problem: str):
        self.column, self.problem = column, problem
        super().__init__(f"{column}: {problem}")


class LegacyMetricsResource(resources.ModelResource):  # type: ignore[misc]
    """A Smart Cron V2 metrics export (rows of flagged_products_cron_metrics) as executions:
    the one definition of the column mapping and row validation, used by the admin's Import
    button (through django-import-export) and by `manage.py import_legacy_metrics`, which
    streams big files through `clean_row` (cronjobs/legacy/history.py).

        task_name        -> task, V2 prefix removed; an unknown task is created, retired
        success          -> status: 1 succeeded, 0 failed
        execution_time   -> duration (seconds); started_at = created_at - duration
        memory_used      -> peak_rss_bytes (bytes)
        created_at       -> finished_at; a time without offset is in TIME_ZONE
        error_message    -> error (optional)
        attempt          -> attempt (optional; or retry_count + 1; else 1)

    Every row becomes a finished execution with trigger `imported` and host `legacy`. Its
    run_id is its UTC time (yymmddHHMMSS) and a hash of the row's values, so importing the same
    rows again adds nothing."""

    task = fields.Field(
        attribute="task", column_name="task", widget=widgets.ForeignKeyWidget(Task, "name")
    )

    REQUIRED = ("task_name", "success", "execution_time", "memory_used", "created_at")
    OPTIONAL = ("error_message", "attempt", "retry_count")
    ADMIN_ROW_LIMIT = 20_000  # bigger files: manage.py import_legacy_metrics streams them
    ADMIN_BYTE_LIMIT = 5 * 1024 * 1024  # about 50,000 rows of a V2 export

    class Meta:
        model = Execution
        fields = (
            "run_id",
            "attempt",
            "task",
            "trigger",
            "status",
            "host",
            "started_at",
            "finished_at",
            "duration",
            "peak_rss_bytes",
            "error",
        )
        import_id_fields = ("run_id", "attempt")
        skip_unchanged = True
        report_skipped = True

    def __init__(self, time_zone: dt.tzinfo | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.time_zone = time_zone or timezone.get_default_timezone()

    def missing_columns(self, headers: list[str]) -> list[str]:
        present = {h.strip().lower() for h in headers if h}
        return [name for name in self.REQUIRED if name not in present]

    def clean_row(self, raw: dict[str, Any]) -> dict[str, Any]:
        """One V2 row (column -> text or value) as Execution field values. Raises RowError
        naming the column."""
        row = {str(k).strip().lower(): _blank(v) for k, v in raw.items() if k}
        legacy_task = _required(row, "task_name")
        if not isinstance(legacy_task, str):
            raise RowError("task_name", f"{legacy_task!r} is not a task name")
        name = modern_name(legacy_task)
        if not NAME_RE.fullmatch(name):
            raise RowError("task_name", f"{legacy_task!r} does not map to a task name ({name!r})")
        success = _flag(_required(row, "success"))
        duration = _number(row, "execution_time", float)
        memory = _number(row, "memory_used", int)
        finished = self._moment(_required(row, "created_at"))
        attempt = _number(row, "attempt", int)
        retries = _number(row, "retry_count", int)
        if attempt is None:
            attempt = retries + 1 if retries is not None else 1
        if not 1 <= attempt <= 32767:
            raise RowError(
                "attempt" if "attempt" in row else "retry_count", f"{attempt} is out of range"
            )
        error = row.get("error_message")
        error = "" if error is None else str(error)
        key = "\x1f".join(
            str(v)
            for v in (legacy_task, finished.isoformat(), duration, memory, success, attempt, error)
        )
        digest = hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()
        return {
            # Time first (digits, so still hex): rows of a file in time order go into the
            # run_id indexes near each other, and a 500,000-row import stays fast.
            "run_id": finished.astimezone(dt.UTC).strftime("%y%m%d%H%M%S") + digest[:20],
            "attempt": attempt,
            "task": name,
            "trigger": Execution.Trigger.IMPORTED,
            "status": Execution.Status.SUCCEEDED if success else Execution.Status.FAILED,
            "host": LEGACY_HOST,
            "started_at": finished - dt.timedelta(seconds=duration or 0),
            "finished_at": finished,
            "duration": duration,
            "peak_rss_bytes": memory,
            "error": error,
        }

    def _moment(self, value: Any) -> dt.datetime:
        if isinstance(value, dt.datetime):
            moment = value
        else:
            try:
                moment = dt.datetime.fromisoformat(str(value).strip())
            except ValueError:
                raise RowError("created_at", f"{value!r} is not a date and time") from None
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, self.time_zone)
        return moment

    # django-import-export's admin path: the row is cleaned before the fields read it.

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        missing = self.missing_columns(dataset.headers or [])
        if missing:
            raise ValueError(f"the file has no column {', '.join(missing)}")
        if len(dataset) > self.ADMIN_ROW_LIMIT:
            raise ValueError(
                f"{len(dataset):,} rows: the admin imports up to {self.ADMIN_ROW_LIMIT:,}; "
                "use manage.py import_legacy_metrics, which streams any size"
            )
        self.added_columns = [c for c in ("run_id", "attempt", "task") if c not in dataset.headers]
        for column in self.added_columns:  # filled in by before_import_row
            dataset.append_col([""] * len(dataset), header=column)

    def before_import_row(self, row: dict[str, Any], **kwargs: Any) -> None:
        number = kwargs.get("row_number")
        try:
            added = getattr(self, "added_columns", [])
            values = self.clean_row({k: v for k, v in row.items() if k not in added})
        except RowError as exc:
            line = f"line {number + 1}, " if number is not None else ""
            raise ValueError(f"{line}column {exc.column}: {exc.problem}") from None
        ensure_tasks([values["task"]])
        row.update(values)
        first = getattr(self, "first_started", None)
        self.first_started = min(first, values["started_at"]) if first else values["started_at"]

    def after_import(self, dataset: Any, result: Any, **kwargs: Any) -> None:
        """The imported rows bypassed the rollups: rebuild the days they fall on."""
        first = getattr(self, "first_started", None)
        if first is not None and not kwargs.get("dry_run") and not result.has_errors():
            history.rebuild(since=first)


def _blank(value: Any) -> Any:
    """Empty cells, and `mysql -B`'s NULL, are missing values."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        return None if text in ("", "NULL", "\\N") else text
    return value


def _required(row: dict[str, Any], column: str) -> Any:
    value = row.get(column)
    if value is None:
        raise RowError(column, "is empty" if column in row else "is missing")
    return value


def _flag(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "1.0"):
        return True
    if text in ("0", "false", "no", "0.0"):
        return False
    raise RowError("success", f"{value!r} is not 1 or 0")


def _number(row: dict[str, Any], column: str, kind: type) -> Any:
    value = row.get(column)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RowError(column, f"{value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise RowError(column, f"{value!r} is not a number of 0 or more")
    if kind is int:
        if number != int(number):
            raise RowError(column, f"{value!r} is not a whole number")
        return int(number)
    return number


def ensure_tasks(names: Iterable[str]) -> list[str]:
    """Create, retired, the tasks of these names that do not exist; returns those created."""
    wanted = set(names)
    known = set(Task.objects.filter(name__in=wanted).values_list("name", flat=True))
    new = sorted(wanted - known)
    now = timezone.now()
    Task.objects.bulk_create(
        [
            Task(
                name=name,
                kind=Task.Kind.COMMAND,
                target="[]",
                source="imported from Smart Cron V2",
                description="Known only from imported history; declare it to run it.",
                timeout=1,
                slow_after=1,
                retired_at=now,
            )
            for name in new
        ],
        ignore_conflicts=True,
    )
    return new
