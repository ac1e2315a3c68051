"""What the JSON API says about tasks, health and history: plain dicts with stable, documented
field names (docs/api.md, "Endpoints"). Numbers come from cronjobs.reporting.stats; this module adds
the task settings, circuit and alert state, and each task's health word from
cronjobs.reporting.health."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, TypedDict

from django.conf import settings
from django.db.models.functions import Now
from django.utils import timezone

from cronjobs import actions, schedules, windows
from cronjobs.models import Alert, CircuitState, Execution, Lease, MaintenanceWindow, Task
from cronjobs.reporting import health, stats
from cronjobs.tasksettings import STORED

# The bodies' shapes. An attempt's columns and a task's settings are derived (from
# Execution.columns and cronjobs.tasksettings), so they stay mappings whose keys tests compare
# against those declarations rather than a second list here.
Columns = dict[str, Any]


class AlertBody(TypedDict):
    id: int
    task: str
    kind: str
    severity: str
    state: str
    message: str
    first_seen: str | None
    last_seen: str | None
    occurrences: int
    incident_id: int | None  # the open incident it is folded into (not notified on its own)
    repeats: int  # reminders sent (ALERT_REPEAT_EVERY)
    escalated_at: str | None  # sent to ALERT_ESCALATION_URLS


class RunningAttempt(TypedDict):
    task: str
    run_id: str
    attempt: int
    trigger: str
    host: str
    pid: int | None
    started_at: str | None
    elapsed_seconds: float | None


class RunningNow(RunningAttempt):
    max_attempts: int
    timeout_seconds: int
    memory_bytes: int | None
    memory_source: str
    memory_limit_bytes: int | None
    stop_requested_by: str | None


class RunningBody(TypedDict):
    generated_at: str | None
    host: str
    running: list[RunningNow]


class TaskCount(TypedDict):
    total: int
    by_health: dict[str, int]


class OpenCircuit(TypedDict):
    task: str
    state: str
    opened_at: str | None


class LastRun(TypedDict):
    task: str
    health: str
    last_run: Columns | None


class StatusBody(TypedDict):
    status: str
    generated_at: str | None
    tasks: TaskCount
    running: list[RunningAttempt]
    open_alerts: list[AlertBody]
    open_circuits: list[OpenCircuit]
    last_runs: list[LastRun]


class TasksBody(TypedDict):
    generated_at: str | None
    tasks: list[Columns]


class Totals(TypedDict):
    runs: int
    succeeded: int
    failures: int
    skipped: int
    running: int
    success_rate: float | None


class MetricsBody(TypedDict):
    hours: int
    since: str | None
    until: str | None
    totals: Totals
    tasks: list[Columns]


def iso(moment: dt.datetime | None, zone: dt.tzinfo | None = None) -> str | None:
    """Timestamps are ISO 8601 in TIME_ZONE with their UTC offset. `zone` is that zone, from
    a caller writing thousands: looking up the current zone costs more than the conversion."""
    return timezone.localtime(moment, zone).isoformat() if moment else None


def _round(value: float | None, places: int = 3) -> float | None:
    return None if value is None else round(value, places)


def _percent(rate: float | None) -> float | None:
    """A success rate (stats.success_rate, 0 to 100) to two decimals, as the SQL views give it."""
    return _round(rate, 2)


class Snapshot:
    """Everything the task list and status need, loaded with a fixed number of queries."""

    def __init__(self) -> None:
        self.now = timezone.now()
        self.tasks = list(Task.objects.select_related("circuitstate").order_by("priority", "name"))
        self.last = stats.last_executions()
        self.healths = self._healths()
        self.running = list(
            Execution.objects.running().select_related("task").order_by("started_at")
        )

    @functools.cached_property
    def last_success(self) -> dict[int, Execution]:
        """Read when a task body is built (the status does not show it)."""
        return stats.last_executions(status=Execution.Status.SUCCEEDED)

    @functools.cached_property
    def calendar(self) -> windows.Calendar:
        """The maintenance windows, read when a task body is built (the status does not)."""
        return windows.Calendar(self.now)

    def _healths(self) -> dict[int, health.TaskHealth]:
        # The API shows no 30-day summary: skip that scan of a month of history.
        return health.task_health(self.tasks, self.now, with_month=False, last=self.last)

    def health(self, task: Task) -> str:
        return self.healths[task.id].status


EXECUTION_COLUMNS = Execution.columns(
    leaving_out={
        "id": "one database's numbering; run_id and attempt name the attempt on every host",
        "task": "the body sits inside its task, or beside the task's name",
        "output": "up to 64 KiB; GET /api/logs/ has every line of it",
        "traceback": "up to 64 KiB; the execution's page in the admin shows it",
    }
)
# Columns that name something (a reason, a run, a person): null when there is none.
NULL_WHEN_BLANK = ("skip_reason", "upstream_run_id", "stopped_by")


def execution_dict(row: Execution | None, zone: dt.tzinfo | None = None) -> Columns | None:
    """An attempt's columns (times in TIME_ZONE, seconds to the millisecond) and the job's own
    memory figure. `zone`: iso()'s."""
    if row is None:
        return None
    zone = zone or timezone.get_current_timezone()
    return {name: _api_value(name, value, zone) for name, value in row.readings(EXECUTION_COLUMNS)}


def _api_value(name: str, value: Any, zone: dt.tzinfo) -> Any:
    if isinstance(value, dt.datetime):
        return iso(value, zone)
    if isinstance(value, float):
        return _round(value)
    if name in NULL_WHEN_BLANK:
        return value or None
    return value


def task_dict(task: Task, snap: Snapshot) -> Columns:
    next_run = None
    if not task.is_retired:
        next_run = schedules.next_run(task.schedule, snap.now, task.time_zone)
    success = snap.last_success.get(task.id)
    health = snap.healths[task.id]
    return {
        "name": task.name,
        "kind": task.kind,
        **settings_dict(task),
        "schedule_text": schedules.describe(task.schedule),
        "next_run": iso(next_run),
        # The same moment on the task's own wall clock (`time_zone`; TIME_ZONE when it has none).
        "next_run_task_zone": _in_task_zone(next_run, task),
        "retired": task.is_retired,
        "circuit_state": task.circuit_state,
        "health": health.status,
        "success_rate_24h": _percent(health.day.success_rate),
        "open_alerts": health.open_alerts,
        "running": any(row.task_id == task.id for row in snap.running),
        "last_status": snap.last[task.id].status if task.id in snap.last else None,
        "last_run": execution_dict(snap.last.get(task.id)),
        "last_success_at": iso(success.finished_at or success.started_at) if success else None,
        "snoozed_until": iso(task.snoozed_until) if task.is_snoozed(snap.now) else None,
        "maintenance": maintenance_dict(snap.calendar.covering(task.name)),
    }


class MaintenanceNow(TypedDict):
    window: int
    mode: str
    reason: str
    until: str | None


def maintenance_dict(occurrence: windows.Occurrence | None) -> MaintenanceNow | None:
    """The maintenance window a task is in now, or None."""
    if occurrence is None:
        return None
    window = occurrence.window
    return {
        "window": window.pk,
        "mode": window.mode,
        "reason": window.reason,
        "until": iso(occurrence.end),
    }


class WindowBody(TypedDict):
    id: int
    name: str | None
    recurring: bool
    tasks: list[str]
    mode: str
    reason: str
    active: bool
    active_until: str | None
    next_start: str | None
    start: str | None
    duration_seconds: int | None
    time_zone: str | None
    starts_at: str | None
    ends_at: str | None
    created_by: str
    ended_by: str | None


def window_dict(window: MaintenanceWindow, calendar: windows.Calendar) -> WindowBody:
    """A window as docs/api.md describes it: recurring ones carry their cron `start`, length
    and zone, one-off ones their `starts_at` and `ends_at`; both say whether they are on now."""
    on = calendar.occurrence_at(window, calendar.now)
    recurring = window.recurring
    return {
        "id": window.pk,
        "name": window.name,
        "recurring": recurring,
        "tasks": window.task_names,
        "mode": window.mode,
        "reason": window.reason,
        "active": on is not None,
        "active_until": iso(on.end) if on else None,
        "next_start": iso(calendar.next_start(window)),
        "start": window.start if recurring else None,
        "duration_seconds": window.duration if recurring else None,
        "time_zone": window.time_zone if recurring else None,
        "starts_at": None if recurring else iso(window.starts_at),
        "ends_at": None if recurring else iso(window.ends_at),
        "created_by": window.created_by,
        "ended_by": window.ended_by or None,
    }


class WindowsBody(TypedDict):
    generated_at: str | None
    windows: list[WindowBody]


def windows_payload(include_past: bool = False) -> WindowsBody:
    """Recurring windows and one-off windows not over yet (with `include_past`, also those over
    in the last MaintenanceWindow.LOOKBACK)."""
    calendar = windows.Calendar()
    shown = [
        window
        for window in calendar.windows
        if include_past or window.recurring or (window.ends_at or calendar.now) > calendar.now
    ]
    return {
        "generated_at": iso(calendar.now),
        "windows": [window_dict(window, calendar) for window in shown],
    }


def _in_task_zone(moment: dt.datetime | None, task: Task) -> str | None:
    if moment is None or not task.time_zone:
        return iso(moment)
    return schedules.in_zone(moment, task.time_zone).isoformat()


def settings_dict(task: Task) -> Columns:
    """The task's stored settings under their API names (cronjobs.tasksettings); a setting
    declared with no API name (a ping URL: its secret) is left out."""
    return {s.api_name: s.row_value(task) for s in STORED if s.api_name is not None}


def tasks_payload(name: str | None = None) -> TasksBody:
    snap = Snapshot()
    tasks = [t for t in snap.tasks if name is None or t.name == name]
    return {"generated_at": iso(snap.now), "tasks": [task_dict(t, snap) for t in tasks]}


def alert_dict(alert: Alert) -> AlertBody:
    return {
        "id": alert.id,
        "task": alert.task.name,
        "kind": alert.kind,
        "severity": alert.severity,
        "state": alert.state,
        "message": alert.message,
        "first_seen": iso(alert.first_seen),
        "last_seen": iso(alert.last_seen),
        "occurrences": alert.occurrences,
        "incident_id": alert.incident_id,
        "repeats": alert.repeats,
        "escalated_at": iso(alert.escalated_at),
    }


def overall_status(healths: list[str], alerts: list[Alert]) -> str:
    """critical: a task is critical or a critical alert is open; degraded: a task needs a look
    or any alert is open; healthy otherwise."""
    if "critical" in healths or any(a.severity == Alert.Severity.CRITICAL for a in alerts):
        return "critical"
    if "warning" in healths or alerts:
        return "degraded"
    return "healthy"


def status_payload() -> StatusBody:
    snap = Snapshot()
    zone = timezone.get_current_timezone()
    alerts = list(Alert.objects.unresolved().select_related("task").order_by("-last_seen"))
    healths = {task.id: snap.health(task) for task in snap.tasks}
    counts: dict[str, int] = {}
    for word in healths.values():
        counts[word] = counts.get(word, 0) + 1
    return {
        "status": overall_status(list(healths.values()), alerts),
        "generated_at": iso(snap.now),
        "tasks": {"total": len(snap.tasks), "by_health": counts},
        "running": [_running_dict(row, snap.now) for row in snap.running],
        "open_alerts": [alert_dict(alert) for alert in alerts],
        "open_circuits": [
            {"task": t.name, "state": t.circuit_state, "opened_at": iso(t.circuitstate.opened_at)}
            for t in snap.tasks
            if t.circuit_state != CircuitState.State.CLOSED
        ],
        "last_runs": [
            {
                "task": t.name,
                "health": healths[t.id],
                "last_run": execution_dict(snap.last.get(t.id), zone),
            }
            for t in snap.tasks
        ],
    }


def _running_dict(row: Execution, now: dt.datetime) -> RunningAttempt:
    return {
        "task": row.task.name,
        "run_id": row.run_id,
        "attempt": row.attempt,
        "trigger": row.trigger,
        "host": row.host,
        "pid": row.pid,
        "started_at": iso(row.started_at),
        "elapsed_seconds": _round((now - row.started_at).total_seconds(), 1),
    }


def running_payload() -> RunningBody:
    """The "Running now" panel (dashboard and task list): every attempt under way, with its
    timeout and peak memory: the peak its supervisor last wrote (every 10 s), raised to what
    the job's process tree holds now when it runs on this host (read live). Two queries."""
    now = timezone.now()
    rows = list(Execution.objects.running().select_related("task").order_by("started_at"))
    stops = dict(
        Lease.objects.filter(stop_requested_at__isnull=False).values_list(
            "run_id", "stop_requested_by"
        )
    )
    running: list[RunningNow] = []
    for row in rows:
        live = actions.live_memory(row)
        written = row.peak_rss_bytes
        running.append(
            {
                **_running_dict(row, now),
                "max_attempts": row.task.max_attempts,
                "timeout_seconds": row.task.timeout,
                "memory_bytes": written if live is None else max(live, written or 0),
                "memory_source": "live" if live is not None else "last written",
                "memory_limit_bytes": row.task.memory_limit,
                "stop_requested_by": stops.get(row.run_id),
            }
        )
    return {"generated_at": iso(now), "host": settings.CRONJOBS_HOST, "running": running}


# The most output text one answer of GET /api/runs/<run_id>/output/ carries (docs/api.md).
OUTPUT_CHUNK = 64 * 1024


class OutputBody(TypedDict):
    run_id: str
    attempt: int
    status: str
    running: bool
    offset: int
    skipped: int
    size: int
    text: str


def output_payload(run_id: str, offset: int, attempt: int | None = None) -> OutputBody | None:
    """A run's output from byte `offset` on (`Execution.output_from`): of `attempt`, or of
    its latest attempt. `running` is whether the run goes on: this attempt runs, or its
    supervisor still holds the task's unexpired lease (waiting to retry). None for an unknown
    run or attempt; ValueError for an offset past the end. Two queries."""
    attempts = Execution.objects.filter(run_id=run_id, attempt__gte=1).only(
        "run_id", "attempt", "status", "output", "output_bytes", "task_id"
    )
    if attempt is not None:
        attempts = attempts.filter(attempt=attempt)
    row = attempts.order_by("-attempt").first()
    if row is None:
        return None
    piece = row.output_from(offset, OUTPUT_CHUNK)
    running = row.status == Execution.Status.RUNNING
    if not running:
        held = Lease.objects.filter(task_id=row.task_id, run_id=run_id, expires_at__gt=Now())
        running = held.exists()  # an expired lease is a dead supervisor's
    return {
        "run_id": run_id,
        "attempt": row.attempt,
        "status": row.status,
        "running": running,
        "offset": piece.offset,
        "skipped": piece.skipped,
        "size": piece.size,
        "text": piece.text,
    }


def summary_dict(name: str, summary: stats.TaskSummary) -> Columns:
    data = summary.as_dict()
    del data["task_id"]
    for key in ("avg_duration", "p95_duration", "max_duration", "avg_peak_rss_bytes"):
        data[key] = _round(data[key])
    data["success_rate"] = _percent(data["success_rate"])
    return {"task": name, **data}


def metrics_payload(hours: int) -> MetricsBody:
    """Per task figures over the last `hours`, for every current task and any retired task that
    has history in the window; plus totals."""
    until = timezone.now()
    since = until - dt.timedelta(hours=hours)
    summaries = stats.task_summaries(since, until)
    tasks = Task.objects.order_by("priority", "name")
    shown = {
        t.name: summaries.get(t.id) or stats.TaskSummary(t.id)
        for t in tasks
        if t.id in summaries or not t.is_retired
    }
    return {
        "hours": hours,
        "since": iso(since),
        "until": iso(until),
        "totals": _totals(stats.combined(list(shown.values()))),
        "tasks": [summary_dict(name, summary) for name, summary in shown.items()],
    }


def _totals(total: stats.TaskSummary) -> Totals:
    return {
        "runs": total.runs,
        "succeeded": total.succeeded,
        "failures": total.failures,
        "skipped": total.skipped,
        "running": total.running,
        "success_rate": _percent(total.success_rate),
    }
