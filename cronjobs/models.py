"""The tables: tasks, executions (one row per attempt or skip), leases, circuits, alerts, API
tokens and the Prometheus tallies (docs/architecture.md, "The data model").

The questions every room asks of these rows are answered here, once: is this alert unresolved
(`Alert.objects.unresolved()`), what is this task's circuit (`Task.circuit_state`), which
attempts finished (`Execution.FINISHED`: the ones a success rate counts), ended
(`Execution.objects.ended()`), failed or still run (`.failures()`, `.running()`).
Transitions that need care across hosts (lease, circuit, alerts) live in cronjobs/supervisor/."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import models
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from cronjobs.tasksettings import SETTINGS


class TaskQuerySet(models.QuerySet["Task"]):
    def named(self, name: str) -> Task | None:
        """The task named exactly `name`, or None. MariaDB's collation compares case- and
        trailing-space-insensitively (`HEARTBEAT ` finds `heartbeat`), so the database's
        match is checked again here."""
        return next((task for task in self.filter(name=name) if task.name == name), None)


class Task(models.Model):
    """A mirror of one declared task. Code and the tasks file own every field except `enabled`,
    which operators toggle; `manage.py synctasks` keeps the rest in step with the registry."""

    class Kind(models.TextChoices):
        CALLABLE = "callable"
        COMMAND = "command"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    target = models.TextField(help_text="Dotted path of the callable, or the command as JSON")
    source = models.CharField(max_length=255, blank=True, help_text="Where it is declared")
    schedule = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    timeout = models.PositiveIntegerField(help_text=SETTINGS["timeout"].help)
    max_attempts = models.PositiveSmallIntegerField(default=SETTINGS["max_attempts"].default)
    retry_delay = models.FloatField(
        default=SETTINGS["retry_delay"].default, help_text=SETTINGS["retry_delay"].help
    )
    memory_limit = models.BigIntegerField(
        null=True, blank=True, help_text=SETTINGS["memory_limit"].help
    )
    circuit_breaker = models.BooleanField(default=SETTINGS["circuit_breaker"].default)
    log_level = models.CharField(max_length=10, default=SETTINGS["log_level"].default)
    alert_on_failure = models.BooleanField(default=SETTINGS["alert_on_failure"].default)
    slow_after = models.FloatField(help_text=SETTINGS["slow_after"].help)
    memory_warn = models.BigIntegerField(
        null=True, blank=True, help_text=SETTINGS["memory_warn"].help
    )
    priority = models.PositiveSmallIntegerField(default=SETTINGS["priority"].default)
    enabled = models.BooleanField(default=SETTINGS["enabled"].default)
    retired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Alert policies and the external ping (issue 13; docs/configuration.md, "Task settings").
    alert_after = models.PositiveSmallIntegerField(
        default=SETTINGS["alert_after"].default, help_text=SETTINGS["alert_after"].help
    )
    success_target = models.FloatField(
        default=SETTINGS["success_target"].default, help_text=SETTINGS["success_target"].help
    )
    success_window = models.PositiveIntegerField(
        default=SETTINGS["success_window"].default, help_text=SETTINGS["success_window"].help
    )
    duration_alerts = models.CharField(
        max_length=4,
        default=SETTINGS["duration_alerts"].default,
        help_text=SETTINGS["duration_alerts"].help,
    )
    duration_baseline = models.PositiveSmallIntegerField(
        default=SETTINGS["duration_baseline"].default,
        help_text=SETTINGS["duration_baseline"].help,
    )
    ping_url = models.CharField(max_length=500, blank=True, help_text=SETTINGS["ping_url"].help)
    snoozed_until = models.DateTimeField(
        null=True, blank=True, help_text="No notifications and no late alerts until then"
    )
    # Scheduling (issue 14; docs/configuration.md, "Task settings").
    after = models.CharField(max_length=500, blank=True, help_text=SETTINGS["after"].help)
    hosts = models.CharField(max_length=500, blank=True, help_text=SETTINGS["hosts"].help)
    catch_up = models.BooleanField(
        default=SETTINGS["catch_up"].default, help_text=SETTINGS["catch_up"].help
    )
    overlap = models.CharField(
        max_length=10, default=SETTINGS["overlap"].default, help_text=SETTINGS["overlap"].help
    )
    on_lease_lost = models.CharField(
        max_length=10,
        default=SETTINGS["on_lease_lost"].default,
        help_text=SETTINGS["on_lease_lost"].help,
    )
    caught_up_slot = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="The last missed slot caught up"
    )
    # One run per slot (issue 22; cronjobs/supervisor/slots.py).
    time_zone = models.CharField(
        max_length=64, blank=True, default="", help_text=SETTINGS["time_zone"].help
    )
    start_deadline = models.FloatField(
        null=True, blank=True, help_text=SETTINGS["start_deadline"].help
    )
    jitter = models.FloatField(
        default=SETTINGS["jitter"].default, help_text=SETTINGS["jitter"].help
    )
    claimed_slot = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="The latest slot a cron invocation or a catch-up run claimed",
    )
    # Who holds claimed_slot (cronjobs/supervisor/slots.py, "claim tokens"): a dispatcher that
    # has not yet started the slot's supervisor, or the supervisor running it.
    claimed_by = models.CharField(max_length=255, blank=True, default="", editable=False)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["priority", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_retired(self) -> bool:
        return self.retired_at is not None

    @property
    def circuit_state(self) -> str:
        """A task that never tripped has no CircuitState row yet: it is closed. Load many tasks
        with `select_related("circuitstate")` to read this without a query per task."""
        try:
            return self.circuitstate.state
        except CircuitState.DoesNotExist:
            return CircuitState.State.CLOSED

    @property
    def upstream_names(self) -> list[str]:
        return [name for name in self.after.split(",") if name]

    @property
    def host_names(self) -> list[str]:
        return [name for name in self.hosts.split(",") if name]

    def may_run_on(self, host: str) -> bool:
        return not self.hosts or host in self.host_names

    def is_snoozed(self, now: datetime | None = None) -> bool:
        return self.snoozed_until is not None and self.snoozed_until > (now or timezone.now())

    def failed_runs_in_a_row(self, limit: int) -> int:
        """How many of the latest runs failed since the last success, counting up to `limit`
        (the `alert_after` policy). A run failed when one of its attempts is a failure: a
        stopped, skipped or running run says nothing about the job's health."""
        since = self.executions.filter(status=Execution.Status.SUCCEEDED).aggregate(
            last=Max("started_at")
        )
        failed = self.executions.failures()
        if since["last"] is not None:
            failed = failed.filter(started_at__gt=since["last"])
        return len(failed.order_by().values_list("run_id", flat=True).distinct()[:limit])


# UTF-8 bytes that continue a character (10xxxxxx): text cut there starts mid-character.
CONTINUATION_BYTES = bytes(range(0x80, 0xC0))


class OutputSlice(NamedTuple):
    """Part of an attempt's output (`Execution.output_from`): `text`, where the next read
    starts (`offset`), the bytes between the asked offset and `text` that are no longer held
    (`skipped`), and the bytes printed so far (`size`)."""

    text: str
    offset: int
    skipped: int
    size: int


class ExecutionQuerySet(models.QuerySet["Execution"]):
    def running(self) -> ExecutionQuerySet:
        return self.filter(status=Execution.Status.RUNNING)

    def ended(self) -> ExecutionQuerySet:
        """Attempts no longer running, stopped ones included: the last attempt a page shows
        for a task. Not `FINISHED`, which leaves a stop out of every rate and average."""
        return self.filter(status__in=Execution.ENDED)

    def failures(self) -> ExecutionQuerySet:
        return self.filter(status__in=Execution.FAILURES)


class Execution(models.Model):
    """One attempt of a run, or one skipped invocation. Attempts of one invocation share run_id;
    a skip has attempt 0. (run_id, attempt) is unique so a replayed spool cannot duplicate."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        TIMED_OUT = "timed_out"
        MEMORY_EXCEEDED = "memory_exceeded"
        ABANDONED = "abandoned"
        CANCELLED = "cancelled"
        SKIPPED = "skipped"

    class SkipReason(models.TextChoices):
        DISABLED = "disabled"
        CIRCUIT_OPEN = "circuit_open"
        OVERLAP = "overlap"
        MAINTENANCE = "maintenance"  # a `skip` maintenance window (cronjobs/windows.py)
        SLOT_TAKEN = "slot_taken"  # another invocation, on any host, claimed the cron slot
        DEADLINE = "deadline"  # began later after its slot than the task's start_deadline

    class Trigger(models.TextChoices):
        CRON = "cron"
        MANUAL = "manual"
        ADMIN = "admin"
        API = "api"
        IMPORTED = "imported"  # history loaded from Smart Cron V2 (import_legacy_metrics)
        AFTER = "after"
        CATCH_UP = "catch_up"

    FAILURES = (Status.FAILED, Status.TIMED_OUT, Status.MEMORY_EXCEEDED, Status.ABANDONED)
    # A finished attempt ran to an outcome: what a success rate counts (reporting.stats
    # success_rate) and what durations and memory figures describe. Not a running attempt, not
    # a skipped invocation, not one an operator stopped (a stop says nothing of the job's health).
    FINISHED = (Status.SUCCEEDED, *FAILURES)
    # An ended attempt is one no longer running, stopped ones included (`objects.ended()`).
    ENDED = (*FINISHED, Status.CANCELLED)

    # The order of these columns is the order of the export's columns, the API's execution
    # body and the metrics log line (see `columns`); moving one needs no migration.
    run_id = models.CharField(max_length=32, db_index=True)
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="executions")
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    skip_reason = models.CharField(max_length=16, choices=SkipReason.choices, blank=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds")
    exit_code = models.IntegerField(null=True, blank=True)
    signal = models.IntegerField(null=True, blank=True)
    peak_rss_bytes = models.BigIntegerField(null=True, blank=True)
    # Function tasks: the peak over the worker's RSS when the job started (the forked
    # interpreter's pages are not the job's). Null for command tasks, whose peak is their own.
    memory_added_bytes = models.BigIntegerField(null=True, blank=True)
    cpu_user = models.FloatField(null=True, blank=True, help_text="Seconds")
    cpu_system = models.FloatField(null=True, blank=True, help_text="Seconds")
    output = models.TextField(blank=True, help_text="Tail of stdout and stderr")
    # How many bytes of output the attempt has printed so far (as UTF-8): `output` holds the
    # last of them, and the live view's offsets count in them (`output_from`). Null on rows
    # written before it was counted, whose output starts at byte 0.
    output_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="Bytes of output printed, as UTF-8; output is their tail"
    )
    error = models.TextField(blank=True, help_text="One-line summary of what went wrong")
    traceback = models.TextField(blank=True)
    # Trigger `after`: the run of the upstream task whose success started this one.
    upstream_run_id = models.CharField(max_length=32, blank=True, default="")
    stopped_by = models.CharField(max_length=150, blank=True, default="")
    # The slot a cron or catch-up run was for, and how late its first attempt began after it
    # (jitter left out); empty for runs a person or a chain started.
    scheduled_for = models.DateTimeField(null=True, blank=True)
    start_lag = models.FloatField(null=True, blank=True, help_text="Seconds")

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["run_id", "attempt"], name="execution_run_attempt"),
        ]
        indexes = [
            # History of one task, newest first; and the dashboard's per-status windows.
            models.Index(fields=["task", "started_at"], name="execution_task_started"),
            models.Index(fields=["status", "started_at"], name="execution_status_started"),
            models.Index(fields=["started_at"], name="execution_started"),
            # The history's search for a host (cronjobs/admin/search.py). On MySQL/MariaDB the
            # error text also has a FULLTEXT index, which Django cannot declare (migration 0012).
            models.Index(fields=["host", "started_at"], name="execution_host_started"),
            # Covers reporting.stats: per task, a window of started_at is one index-only range
            # with every column the summaries and the p95 read; without it a 30-day summary
            # fetches a third of the table row by row.
            models.Index(
                fields=["task", "started_at", "status", "attempt", "duration", "peak_rss_bytes"],
                name="execution_task_window_stats",
            ),
        ]

    def __str__(self) -> str:
        """The attempt's title on its page and in the admin's history: 'heartbeat, run
        9ad93a68, attempt 1 (failed)'."""
        return f"{self.task.name}, run {self.run_id[:8]}, attempt {self.attempt} ({self.status})"

    @property
    def is_failure(self) -> bool:
        return self.status in self.FAILURES

    @property
    def job_memory_bytes(self) -> int | None:
        """The job's own memory: what a function added over its worker's baseline, or a
        command's peak. The seed-compatible `memory_used` column shows this figure."""
        if self.memory_added_bytes is not None:
            return self.memory_added_bytes
        return self.peak_rss_bytes

    @classmethod
    def columns(cls, leaving_out: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """Every column of an attempt, in declaration order: the one list the spool, the
        export, the metrics log line and the API's execution body take theirs from, so a
        column added to the model reaches all four (tests/test_execution_columns.py). A reader
        names what it leaves out and why (`{"output": "up to 64 KiB a row"}`); a name that is
        not a column is a mistake, caught when the reader's module is imported."""
        leaving_out = leaving_out or {}
        names = tuple(field.name for field in cls._meta.concrete_fields)
        if unknown := sorted(set(leaving_out) - set(names)):
            raise ValueError(f"not columns of Execution: {', '.join(unknown)}")
        return tuple(name for name in names if name not in leaving_out)

    def output_from(self, offset: int, limit: int) -> OutputSlice:
        """The output from byte `offset` on, at most `limit` bytes of it, as the live view reads
        it. Bytes before what the row still holds (a long output keeps only its tail) are
        `skipped`; both ends of the text fall on whole characters. ValueError when `offset` is
        past the end of the output so far."""
        held = self.output.encode("utf-8")
        size = len(held) if self.output_bytes is None else self.output_bytes
        if offset > size:
            raise ValueError(f"offset {offset} is past the end of the output ({size} bytes)")
        first = size - len(held)  # the byte number of the first byte the row holds
        begin = max(offset, first) - first
        piece = held[begin : begin + limit]
        lead = len(piece) - len(piece.lstrip(CONTINUATION_BYTES))  # the rest of a character
        text = piece[lead:].decode("utf-8", errors="ignore")  # drops only a cut last character
        start = first + begin + lead
        end = start + len(text.encode("utf-8"))
        return OutputSlice(text=text, offset=end, skipped=start - offset, size=size)

    def readings(self, names: Iterable[str]) -> Iterator[tuple[str, Any]]:
        """(name, value) for each column in `names`, with `job_memory_bytes` right after
        `memory_added_bytes`: the metrics line and the API show the job's own figure beside
        the two it comes from."""
        for name in names:
            yield name, getattr(self, name)
            if name == "memory_added_bytes":
                yield "job_memory_bytes", self.job_memory_bytes


class Lease(models.Model):
    """Overlap guard for one task, shared by every host on the same database. Taken and renewed
    by conditional UPDATEs against the database clock in cronjobs/supervisor/lease.py."""

    task = models.OneToOneField(Task, on_delete=models.CASCADE, primary_key=True)
    run_id = models.CharField(max_length=32, blank=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # A stop request for the holder's run (cronjobs.actions.stop); the holder reads it on its
    # lease beat, so a stop works from any host that shares the database.
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    stop_requested_by = models.CharField(max_length=150, blank=True, default="")

    def __str__(self) -> str:
        return f"lease {self.task_id} {self.run_id or 'free'}"


class CircuitStateQuerySet(models.QuerySet["CircuitState"]):
    def tripped(self) -> CircuitStateQuerySet:
        """Circuits that are open or half-open: the ones an operator should look at."""
        return self.exclude(state=CircuitState.State.CLOSED)


class CircuitState(models.Model):
    """Breaker state for one task; transitions live in cronjobs/supervisor/circuit.py."""

    class State(models.TextChoices):
        CLOSED = "closed"
        OPEN = "open"
        HALF_OPEN = "half_open"

    task = models.OneToOneField(Task, on_delete=models.CASCADE, primary_key=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.CLOSED)
    opened_at = models.DateTimeField(null=True, blank=True)
    trial_run_id = models.CharField(max_length=32, blank=True)
    failure_count = models.PositiveIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    objects = CircuitStateQuerySet.as_manager()

    def __str__(self) -> str:
        return f"circuit {self.task_id} {self.state}"


class AlertQuerySet(models.QuerySet["Alert"]):
    def unresolved(self) -> AlertQuerySet:
        """Open or acknowledged: `open_key` is set exactly while an alert is unresolved."""
        return self.filter(open_key__isnull=False)


class Alert(models.Model):
    """At most one unresolved alert per (task, kind): `open_key` holds "task:kind" while the
    alert is unresolved and NULL afterwards, and a unique index on it enforces the rule on both
    SQLite and MySQL (neither offers partial unique indexes in common)."""

    class Kind(models.TextChoices):
        FAILED = "failed"
        CIRCUIT_OPEN = "circuit_open"
        SLOW = "slow"
        MEMORY = "memory"
        LATE = "late"
        ABANDONED = "abandoned"
        SUCCESS_RATE = "success_rate"
        OUTAGE = "outage"
        TOO_SHORT = "too_short"
        TOO_LONG = "too_long"
        FLAPPING = "flapping"

    class Severity(models.TextChoices):
        WARNING = "warning"
        CRITICAL = "critical"

    class State(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    state = models.CharField(max_length=14, choices=State.choices, default=State.OPEN)
    open_key = models.CharField(max_length=150, null=True, blank=True, unique=True, editable=False)
    message = models.TextField()
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    occurrences = models.PositiveIntegerField(default=1)
    notified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # One page per incident (docs/operations.md, "Alerting"): a dependant's `late` or `failed`
    # alert raised while an outage or an upstream failure is open points at that alert and is
    # not notified on its own; the incident's notices list it.
    incident = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="folded",
        help_text="The open incident this alert was folded into (not notified on its own)",
    )
    repeats = models.PositiveIntegerField(
        default=0, help_text="Reminders the watchdog sent (ALERT_REPEAT_EVERY)"
    )
    escalated_at = models.DateTimeField(
        null=True, blank=True, help_text="When it went to ALERT_ESCALATION_URLS"
    )

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-last_seen"]
        indexes = [models.Index(fields=["state", "last_seen"], name="alert_state_last_seen")]

    def __str__(self) -> str:
        return f"{self.kind} alert of {self.task.name} ({self.state})"

    @property
    def is_unresolved(self) -> bool:
        return self.open_key is not None

    @property
    def summary(self) -> str:
        """`#12 failed alert for tills (open)`: how notices and pages name another alert."""
        return f"#{self.pk} {self.kind} alert for {self.task.name} ({self.state})"


class DurationBaseline(models.Model):
    """The latest successful attempts' durations of a task with `duration_alerts = "auto"`,
    newest last, as `[execution id, seconds]` pairs: the baseline its next success is judged
    against (cronjobs/supervisor/alerts.py) without reading the history. cronjobs/history.py
    appends to it in the transaction that finalises the attempt and keeps the newest
    `duration_baseline` pairs."""

    task = models.OneToOneField(Task, on_delete=models.CASCADE, primary_key=True)
    samples = models.JSONField(default=list)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"duration baseline {self.task_id} ({len(self.samples)} runs)"


class MaintenanceWindowQuerySet(models.QuerySet["MaintenanceWindow"]):
    def live(self, now: datetime | None = None) -> MaintenanceWindowQuerySet:
        """The windows that can matter at `now`: recurring ones still declared, and one-off
        ones not over for more than LOOKBACK (a slot they skipped may still be a task's latest,
        and the watchdog must not call it late)."""
        since = (now or timezone.now()) - MaintenanceWindow.LOOKBACK
        recurring = models.Q(recurring=True, retired_at__isnull=True)
        return self.filter(recurring | models.Q(recurring=False, ends_at__gt=since))


class MaintenanceWindow(models.Model):
    """A time when some tasks, or all (`tasks` is "*"), are under maintenance
    (docs/operations.md, "Maintenance windows"): `skip` skips their scheduled invocations and
    the `late` alerts those would raise, `mute` lets runs go on and keeps their alerts from
    anyone until it ends. Recurring windows mirror the tasks file's `[windows.NAME]` tables
    (`name`, a cron `start` in `time_zone`, `duration` seconds); one-off windows are made by
    people through cronjobs.actions (`starts_at` to `ends_at`). The question "is this task in
    a window at t" is answered by cronjobs/windows.py from one read of all of them."""

    class Mode(models.TextChoices):
        SKIP = "skip"
        MUTE = "mute"

    ALL = "*"
    LOOKBACK = timedelta(days=35)

    recurring = models.BooleanField(default=False, editable=False)
    name = models.CharField(
        max_length=100, null=True, blank=True, unique=True, help_text="Its [windows.NAME] table"
    )
    tasks = models.CharField(max_length=1000, help_text='Task names, comma-separated, or "*"')
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.SKIP)
    reason = models.CharField(max_length=500)
    start = models.CharField(max_length=100, blank=True, help_text="Recurring: a cron expression")
    duration = models.PositiveIntegerField(default=0, help_text="Recurring: seconds")
    time_zone = models.CharField(max_length=64, blank=True, help_text="Recurring: of `start`")
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    ended_by = models.CharField(max_length=150, blank=True, help_text="Who ended it early")
    retired_at = models.DateTimeField(null=True, blank=True)
    # The end of the latest occurrence whose still-open alerts were notified (mute windows):
    # a compare-and-set on it lets exactly one watchdog send them.
    closed_through = models.DateTimeField(null=True, blank=True, editable=False)

    objects = MaintenanceWindowQuerySet.as_manager()

    class Meta:
        ordering = ["-recurring", "name", "-starts_at"]
        indexes = [models.Index(fields=["recurring", "ends_at"], name="window_recurring_ends")]

    def __str__(self) -> str:
        return f"window {self.name or self.pk}: {self.mode} {self.tasks}"

    @property
    def label(self) -> str:
        return self.name if self.name else f"#{self.pk}"

    @property
    def task_names(self) -> list[str]:
        return [name for name in self.tasks.split(",") if name]

    def covers(self, task_name: str) -> bool:
        return self.tasks == self.ALL or task_name in self.task_names


class ApiToken(models.Model):
    """A bearer token for the JSON API and /metrics. Only a SHA-256 of the secret is stored;
    the secret is shown once when the token is made (cronjobs/tokens.py), and `prefix` (its
    first characters) lets an operator tell tokens apart without it."""

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=12, editable=False)
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    read_only = models.BooleanField(
        default=True, help_text="Read-only tokens can read everything and change nothing"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Only `manage.py apitoken create` without --user makes a token with no creator; a token
    # whose creator was deleted (created_by set to NULL) is not one and stops working.
    from_command_line = models.BooleanField(
        default=False,
        editable=False,
        help_text="Made by manage.py apitoken create without --user: acts for the host's operator",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def owner_gone(self) -> bool:
        """The token cannot work because its creator was deleted, deactivated or lost staff
        status (cronjobs.tokens.authenticate answers no token)."""
        owner = self.created_by
        if owner is None:
            return not self.from_command_line
        return not (owner.is_active and owner.is_staff)


class Rollup(models.Model):
    """One task's attempts and skips that started in one local hour (span `hour`) or one local
    day (span `day`), added up as each is finalised: the window figures of the dashboard, the API
    and Prometheus read these instead of the history (cronjobs/reporting/rollups.py), and
    cronjobs/history.py writes them. `start` is the UTC instant the local hour or day begins in
    settings.TIME_ZONE. Pruning old executions leaves rollups alone; `manage.py rebuild_rollups`
    recomputes them from what history is left.

    Running attempts are not in here (they are counted from the history); durations and memory
    cover the attempts that ran to an outcome, as in reporting.stats. `histogram` counts
    durations in log-spaced bins (rollups.BIN_RATIO wide), enough for a p95 within 4 %."""

    class Span(models.TextChoices):
        HOUR = "hour"
        DAY = "day"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    span = models.CharField(max_length=4, choices=Span.choices)
    start = models.DateTimeField()
    succeeded = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    timed_out = models.IntegerField(default=0)
    memory_exceeded = models.IntegerField(default=0)
    abandoned = models.IntegerField(default=0)
    cancelled = models.IntegerField(default=0)
    skipped = models.IntegerField(default=0)
    duration_sum = models.FloatField(default=0.0)
    duration_count = models.IntegerField(default=0)
    duration_min = models.FloatField(null=True)
    duration_max = models.FloatField(null=True)
    memory_sum = models.BigIntegerField(default=0)
    memory_count = models.IntegerField(default=0)
    memory_max = models.BigIntegerField(null=True)
    histogram = models.JSONField(default=dict)

    class Meta:
        constraints = [
            # Also the index of every read: one span, a range of starts, every task.
            models.UniqueConstraint(fields=["span", "start", "task"], name="rollup_span_start_task")
        ]

    def __str__(self) -> str:
        return f"{self.task_id} {self.span} {self.start:%Y-%m-%d %H:%M}"


class OutcomeTally(models.Model):
    """All-time attempt counts by task and status for Prometheus counters, carried forward by
    cronjobs/history.py so a scrape (cronjobs/reporting/counters.py) never counts the whole
    history and pruning old executions never makes a counter go backwards. Rows started before
    TallyMark.upto are in here."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Execution.Status.choices)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "status"], name="outcome_tally_task_status")
        ]

    def __str__(self) -> str:
        return f"{self.task_id} {self.status} {self.count}"


class TallyMark(models.Model):
    """The one row saying how far OutcomeTally has counted (executions started before `upto`)."""

    BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)  # before any history: nothing tallied yet

    upto = models.DateTimeField()

    def __str__(self) -> str:
        return f"tallied up to {self.upto}"

    @classmethod
    def current(cls) -> datetime:
        """How far the tally has counted; BEGINNING before it first moved."""
        upto = cls.objects.filter(pk=1).values_list("upto", flat=True).first()
        return upto or cls.BEGINNING


class StatusBadge(models.Model):
    """The secret of one status badge's URL (cronjobs/views/badges.py): one task's, or every
    task's when `task` is null. The secret is in the URL, which is shown on the task's page, so
    it is stored as it is (as Healthchecks stores its badge keys); deleting the row revokes
    the URL, a new secret replaces it."""

    task = models.OneToOneField(
        Task, null=True, blank=True, on_delete=models.CASCADE, related_name="status_badge"
    )
    secret = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"badge of {self.task.name if self.task else 'all tasks'}"

    def get_absolute_url(self) -> str:
        return reverse("status-badge", args=[self.pk, self.secret])
