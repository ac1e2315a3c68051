"""One invocation of a task, as `manage.py runjob` performs it (docs/architecture.md, "The life of
one invocation").

    resolve -> leave it to its hosts if pinned elsewhere -> (cron) find its slot, or leave it
    -> skip if disabled -> skip a scheduled invocation in a `skip` maintenance window -> (cron)
    skip past the start deadline, claim the slot or skip, jitter -> consult the circuit -> take
    the lease (skip, wait or replace: the task's `overlap`) -> attempts, each stopped when the
    lease is lost (fencing) -> update circuit and alerts -> release the lease -> logs -> after
    a success, the tasks declared `after` it (`run_chain`)

Every attempt gets an Execution row inserted as `running` before the child starts and is finalised
afterwards whatever happens, so the history never shows a success in advance. When the database
cannot be reached to record a row, the row goes to the spool (cronjobs/supervisor/spool.py) and the
exit status is still the job's own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from cronjobs import history, schedules, windows
from cronjobs.models import CircuitState, Execution, Lease, Task
from cronjobs.supervisor import alerts, circuit, logs, pings, slots, spool
from cronjobs.supervisor.db import ensure_usable_connection
from cronjobs.supervisor.lease import Taken, TaskLease, request_stop
from cronjobs.supervisor.liveoutput import OUTPUT_EVERY, LiveTail
from cronjobs.supervisor.process import AttemptResult, Halt, Limits, run_attempt
from cronjobs.supervisor.registry import JobContext, registry
from cronjobs.supervisor.sync import sync_task
from cronjobs.tasksettings import TaskSpec

log = logging.getLogger(__name__)

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_USAGE, EXIT_SKIPPED = 0, 1, 2, 3
Status = Execution.Status
SkipReason = Execution.SkipReason


@dataclasses.dataclass
class Outcome:
    run_id: str
    status: str
    executions: list[Execution]
    skip_reason: str = ""
    task: str = ""
    why: str = ""  # a skip that left no row (pinned to other hosts): what happened

    @property
    def pinned_elsewhere(self) -> bool:
        return self.skip_reason == SKIP_HOST

    @property
    def recorded_nothing(self) -> bool:
        """Left to other hosts, or no slot of the task now: no row, on purpose."""
        return self.skip_reason in (SKIP_HOST, SKIP_NOT_A_SLOT, SKIP_TAKEN_OVER)

    @property
    def exit_code(self) -> int:
        if self.status == Status.SUCCEEDED:
            return EXIT_SUCCEEDED
        if self.status == Status.SKIPPED:
            return EXIT_SKIPPED
        return EXIT_FAILED


class Invocation:
    """The state of one `runjob <task>` call: which run, where, triggered how."""

    def __init__(
        self,
        spec: TaskSpec,
        trigger: str,
        run_id: str | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        upstream_run_id: str = "",
        scheduled_for: dt.datetime | None = None,
        claimed: Claimed | None = None,
    ):
        self.spec = spec
        self.claimed = claimed
        self.trigger = trigger
        self.sleep = sleep
        self.run_id = run_id or new_run_id()
        self.upstream_run_id = upstream_run_id
        self.host = settings.CRONJOBS_HOST
        self.task: Task | None = None
        self.lease: TaskLease | None = None
        self.circuit: CircuitState | None = None  # read once, by circuit.consult
        self.memory_written_at = 0.0
        self.fenced = ""  # why the job was stopped for its lease, once it was
        self.lease_warned = False  # on_lease_lost = "continue": the loss is logged once
        self.output_written_at = 0.0
        # The slot this run is for: found by a cron call, given by the watchdog's catch-up.
        self.scheduled_for = scheduled_for
        self.jitter = 0.0  # seconds waited before the first attempt, left out of the lag
        self.start_lag: float | None = None

    @property
    def slot_bound(self) -> bool:
        """Cron's calls belong to a slot; a person's, a chain's or a catch-up's do not."""
        return self.trigger == Execution.Trigger.CRON and bool(self.spec.schedule)

    def run(self) -> Outcome:
        if not self.spec.may_run_on(self.host):
            # Every host's crontab fires every task; the pinned ones run it. No row here, or
            # each pinned task would fill the history with a skip per host per slot.
            why = f"pinned to {', '.join(self.spec.hosts)}"
            logs.write("INFO", self.spec.name, f"not run on {self.host}: {why}")
            return Outcome(self.run_id, Status.SKIPPED, [], skip_reason=SKIP_HOST, why=why)
        found = self.claimed.found() if self.claimed else self.find_slot()
        if found is not None and found.slot is None:
            # A zone task's line also fires at the hour of the zone's other UTC offset.
            logs.write("INFO", self.spec.name, f"not run on {self.host}: {found.why}")
            return Outcome(self.run_id, Status.SKIPPED, [], SKIP_NOT_A_SLOT, why=found.why)
        self.task = sync_task(self.spec)
        if self.claimed and not slots.take_over(
            self.task.pk, self.claimed.slot, self.claimed.token
        ):
            why = "a dispatcher that outlived its claim's patience took the slot over"
            logs.write("WARNING", self.spec.name, f"not run by pid {os.getpid()}: {why}")
            return Outcome(self.run_id, Status.SKIPPED, [], SKIP_TAKEN_OVER, why=why)
        if not self.task.enabled:
            return self.skip(SkipReason.DISABLED, "task is disabled")
        if window := self.maintenance():
            return self.skip(SkipReason.MAINTENANCE, window.why())
        if found is not None and (refused := self.claim_slot(found)):
            return refused
        decision = circuit.consult(self.task, self.run_id, enabled=self.spec.circuit_breaker)
        if not decision.allowed:
            return self.skip(SkipReason.CIRCUIT_OPEN, decision.reason)
        self.circuit = decision.state
        self.lease = TaskLease(self.task, self.run_id, self.host)
        taken, why = self.take_lease()
        if not taken.ok:
            circuit.release_trial(self.task, self.run_id)
            return self.skip(SkipReason.OVERLAP, why)
        if taken.abandoned_run:
            logs.write(
                "WARNING", self.spec.name, f"took over from dead run {taken.abandoned_run[:8]}"
            )
        pinger = pings.Pinger(pings.url_for(self.spec.name, self.spec.ping_url), self.run_id)
        pinger.start()
        try:
            outcome = self.attempts()
        finally:
            self.lease.release()
        self.conclude(outcome)
        if outcome.status == Status.SUCCEEDED:
            pinger.success()
        else:
            pinger.fail(outcome.executions[-1].output)
        return outcome

    def expire(self, why: str) -> Outcome:
        """A slot its dispatcher claimed but could not start in time (all the host's runs
        busy until past the start deadline or the next slot): one skipped row says so."""
        assert self.claimed is not None
        self.task = sync_task(self.spec)
        if not slots.take_over(self.task.pk, self.claimed.slot, self.claimed.token):
            return Outcome(self.run_id, Status.SKIPPED, [], SKIP_TAKEN_OVER)
        self.scheduled_for = self.claimed.slot
        return self.skip(SkipReason.DEADLINE, why)

    def maintenance(self) -> windows.Occurrence | None:
        """The `skip` window this scheduled invocation falls in; a person's run goes ahead."""
        if self.trigger not in windows.SCHEDULED:
            return None
        return windows.Calendar().covering(self.spec.name, mode=windows.Mode.SKIP)

    def take_lease(self) -> tuple[Taken, str]:
        """Take the lease as the task's `overlap` says; when not taken, also why.

        `skip`: one try. `wait`: try again every WAIT_POLL seconds until the holder is gone.
        `replace`: the same, after asking each holder in turn to stop (the operators' stop
        path: the holder's attempt ends `cancelled`, `stopped_by` naming this run). Both wait
        `overlap_patience()` at most. The lease is only ever taken when free, so a waiting or
        replacing run never overlaps the run it waits for."""
        assert self.lease is not None and self.task is not None
        taken = self.lease.acquire()
        policy = self.spec.overlap
        if taken.ok or policy == "skip":
            return taken, _holder_text(taken.holder)
        patience = self.overlap_patience()
        give_up = time.monotonic() + patience
        asked: set[str] = set()
        logs.write(
            "INFO",
            self.spec.name,
            f"run={self.run_id[:8]} waits for the lease (overlap = {policy}): "
            f"{_holder_text(taken.holder)}",
        )
        while not taken.ok:
            holder = taken.holder
            if policy == "replace" and holder and holder.run_id and holder.run_id not in asked:
                by = f"replacement run {self.run_id[:8]} on {self.host}"
                stopped = request_stop(self.task, by) or holder.run_id
                asked.add(stopped)
                logs.write("INFO", self.spec.name, f"{by} asked run {stopped[:8]} to stop")
            if time.monotonic() >= give_up:
                return taken, f"{_holder_text(holder)}; waited {patience:g} s (overlap = {policy})"
            self.sleep(WAIT_POLL)
            taken = self.lease.acquire()
        return taken, ""

    def overlap_patience(self) -> float:
        """How long `overlap = "wait"` or `"replace"` waits for the lease: the task's timeout,
        and for a run of a slot with a `start_deadline`, no later than that deadline (a start
        after it would be the wrong time, as for a late cron call)."""
        patience = float(self.spec.timeout)
        if self.scheduled_for is not None and self.spec.start_deadline:
            deadline = self.scheduled_for + dt.timedelta(seconds=self.spec.start_deadline)
            patience = min(patience, max(0.0, (deadline - timezone.now()).total_seconds()))
        return patience

    def find_slot(self) -> slots.Slot | None:
        """A cron call's slot, read at the moment cron started this process; None when the
        invocation is not bound to one."""
        if not self.slot_bound:
            return None
        now = timezone.now()
        return slots.find(self.spec, now, began=slots.process_started(now))

    def claim_slot(self, found: slots.Slot) -> Outcome | None:
        """Before the lease: skip past the start deadline, or when another invocation (any
        host) has the slot; then wait this host's jitter. None: go on."""
        assert self.task is not None and found.slot is not None
        self.scheduled_for = found.slot
        late = slots.too_late(self.spec, found)
        if late:
            return self.skip(SkipReason.DEADLINE, late)
        if self.claimed is None and not slots.claim(self.task, found.slot):
            return self.skip(
                SkipReason.SLOT_TAKEN, slots.taken_text(self.task, self.spec, found.slot)
            )
        self.jitter = slots.jitter_delay(self.spec, self.host)
        if self.jitter:
            logs.write("INFO", self.spec.name, f"run={self.run_id[:8]} jitter {self.jitter:g}s")
            self.sleep(self.jitter)
        return None

    def skip(self, reason: str, why: str) -> Outcome:
        now = timezone.now()
        row = Execution(
            run_id=self.run_id,
            task=self.task,
            attempt=0,
            trigger=self.trigger,
            status=Status.SKIPPED,
            skip_reason=reason,
            host=self.host,
            pid=os.getpid(),
            upstream_run_id=self.upstream_run_id,
            started_at=now,
            finished_at=now,
            duration=0.0,
            error=why,
            scheduled_for=self.scheduled_for,
        )
        self.save(row)
        logs.write("INFO", self.spec.name, f"run={self.run_id[:8]} skipped ({reason}): {why}")
        return Outcome(self.run_id, Status.SKIPPED, [row], skip_reason=reason)

    def attempts(self) -> Outcome:
        rows: list[Execution] = []
        for attempt in range(1, self.spec.max_attempts + 1):
            row = self.attempt(attempt)
            rows.append(row)
            opened = self.update_circuit(row)
            if row.status in (Status.SUCCEEDED, Status.MEMORY_EXCEEDED, Status.CANCELLED):
                break  # over its memory limit it will be again; a stopped run stays stopped
            if self.fenced:
                break  # no lease, no more attempts: another host may be running the task
            if opened:
                logs.write("WARNING", self.spec.name, "circuit opened: no more attempts")
                break
            if attempt < self.spec.max_attempts:
                self.wait(self.spec.retry_delay)
                if self.lease and self.lease.stop_requested_by:
                    # The attempt that ran keeps its own status; the run was stopped, so it
                    # raises no failed alert and runs nothing after it.
                    who = self.lease.stop_requested_by
                    logs.write("INFO", self.spec.name, f"stopped by {who} between attempts")
                    return Outcome(self.run_id, Status.CANCELLED, rows)
                if self.lease_lost():
                    self.fenced = self.lease_lost()
                    logs.write("ERROR", self.spec.name, f"{self.fenced}: no more attempts")
                    break
        return Outcome(self.run_id, rows[-1].status, rows)

    def update_circuit(self, row: Execution) -> bool:
        """Feed the attempt to the breaker; True when it is now open."""
        if self.circuit is None:  # the breaker is off for this task
            return False
        assert self.task is not None  # run() synced it before any attempt
        try:
            ensure_usable_connection()
            if row.status == Status.CANCELLED or self.fenced:
                # An operator's stop, or the supervisor's own for its lease, says nothing of
                # the job.
                circuit.release_trial(self.task, self.run_id)
                return False
            return circuit.record_attempt(self.task, self.run_id, row, self.circuit)
        except DatabaseError as exc:
            log.warning("circuit not updated for %s: %s", self.spec.name, exc)
            return False

    def wait(self, seconds: float) -> None:
        """Sleep between attempts, renewing the lease so it cannot lapse meanwhile."""
        step = max(1.0, self.lease.beat) if self.lease else seconds  # a stop ends the wait
        remaining = seconds
        while True:
            self.sleep(min(step, remaining))
            remaining -= step
            if self.lease and (self.lease.renew_if_due() or self.lease_lost()):
                return
            if remaining <= 0:
                return

    def attempt(self, number: int) -> Execution:
        row = Execution(
            run_id=self.run_id,
            task=self.task,
            attempt=number,
            trigger=self.trigger,
            status=Status.RUNNING,
            host=self.host,
            pid=os.getpid(),
            upstream_run_id=self.upstream_run_id,
            started_at=timezone.now(),
            scheduled_for=self.scheduled_for,
        )
        if self.scheduled_for is not None and self.start_lag is None:
            lag = (row.started_at - self.scheduled_for).total_seconds() - self.jitter
            self.start_lag = round(lag, 3)  # the run's lag: every attempt's row carries it
        row.start_lag = self.start_lag
        self.save(row)
        output = logs.OutputLog(self.spec.name, self.run_id, number)
        live = LiveTail(settings.CRONJOBS_OUTPUT_TAIL)

        def on_output(chunk: bytes) -> None:
            output.feed(chunk)
            live.feed(chunk)

        logs.write("INFO", self.spec.name, f"run={self.run_id[:8]} attempt {number} started")
        self.output_written_at = 0.0
        try:
            result = run_attempt(
                self.work(number),
                self.limits(),
                on_output=on_output,
                on_tick=lambda peak: self.tick(row, peak, live),
                cwd=str(settings.BASE_DIR),
                env=self.environment(number) if self.spec.kind == Task.Kind.COMMAND else None,
            )
        except BaseException as exc:  # the supervisor itself was interrupted: record it
            result = AttemptResult(
                status=Status.FAILED,
                duration=(timezone.now() - row.started_at).total_seconds(),
                error=f"supervisor interrupted: {type(exc).__name__}: {exc}".rstrip(": "),
            )
            self.finish(row, result, live)
            raise
        finally:
            output.close()
        self.finish(row, result, live)
        return row

    def tick(self, row: Execution, peak: int, live: LiveTail | None = None) -> Halt | None:
        """The monitor's beat, which never waits on the database: renew the lease (which
        answers whether someone asked to stop the run), stop the job when the lease is lost
        (fencing); every OUTPUT_EVERY seconds write what the attempt printed since on the
        running row (the live view), and every MEMORY_EVERY seconds its peak memory so far (the
        "Running now" panel), so both read the same from any host. The writes run on the
        lease's background thread, one at a time."""
        lease = self.lease
        if lease is None:
            return None
        if lease.renew_if_due():
            return Halt(Status.CANCELLED, "stopped on request")
        lost = self.fenced or self.lease_lost()
        if lost:
            if not self.fenced:  # asked again on every beat of the grace: say it once
                self.fenced = lost
                logs.write("ERROR", self.spec.name, f"run={self.run_id[:8]} {lost}: stopping it")
            return Halt(Status.FAILED, lost, grace=lease.fence_grace)
        if row.pk and live and time.monotonic() - self.output_written_at >= OUTPUT_EVERY:
            self.note_output(row, live)
        if row.pk and peak and time.monotonic() - self.memory_written_at >= MEMORY_EVERY:
            written = lease.background.offer(lambda: history.note_peak(row, peak))
            if written is not None:
                self.memory_written_at = time.monotonic()
                written.add_done_callback(self._memory_not_written)
        return None

    def lease_lost(self) -> str:
        """Why the job must stop for its lease, or "". With `on_lease_lost = "continue"` the
        loss is logged once and the job goes on, without the guarantee."""
        lost = self.lease.lost() if self.lease else ""
        if not lost or self.spec.on_lease_lost == "stop":
            return lost
        if not self.lease_warned:
            self.lease_warned = True
            logs.write(
                "WARNING",
                self.spec.name,
                f"run={self.run_id[:8]} {lost}; the job goes on (on_lease_lost = continue)",
            )
        return ""

    def _memory_not_written(self, written: Any) -> None:
        if written.exception() is not None:
            log.warning("memory of %s not written: %s", self.spec.name, written.exception())

    def note_output(self, row: Execution, live: LiveTail) -> None:
        """Offer what was printed since the last write to the background thread (taken only
        when the thread is idle, so nothing taken is dropped for a busy thread)."""
        assert self.lease is not None
        if self.lease.background.busy:
            return
        news = live.take()
        if news is None:
            return
        written = self.lease.background.offer(lambda: history.note_output(row, *news))
        if written is not None:
            self.output_written_at = time.monotonic()
            written.add_done_callback(self._output_not_written)

    def _output_not_written(self, written: Any) -> None:
        if written.exception() is not None:
            log.warning("output of %s not written: %s", self.spec.name, written.exception())

    def save(self, row: Execution) -> None:
        """Write the row and its rollups, or spool it when the database cannot be reached."""
        try:
            ensure_usable_connection()
            history.save(row)
        except DatabaseError as exc:
            log.error("database unreachable, spooling %s: %s", self.spec.name, exc)
            spool.append(self.spec.name, row)
            connection.close()  # reconnect on the next write instead of reusing a dead socket

    def conclude(self, outcome: Outcome) -> None:
        """Raise and resolve alerts from the finished run (docs/operations.md, "Alerts")."""
        assert self.task is not None  # run() synced it before any attempt
        try:
            ensure_usable_connection()
            alerts.raise_run_alerts(self.task, self.spec, outcome)
        except DatabaseError as exc:
            log.error("alerts not updated for %s: %s", self.spec.name, exc)

    def work(self, attempt: int) -> Callable[[], Any] | tuple[str, ...]:
        if self.spec.kind == Task.Kind.COMMAND:
            return tuple(self.spec.target)
        func = self.spec.resolve_callable()
        logger = logging.getLogger(f"cronjobs.job.{self.spec.name}")
        ctx = JobContext(
            task=self.spec.name,
            run_id=self.run_id,
            attempt=attempt,
            max_attempts=self.spec.max_attempts,
            trigger=self.trigger,
            logger=logger,
            scheduled_for=self.local_slot(),
        )
        args = (ctx,) if inspect.signature(func).parameters else ()

        def job() -> None:  # runs in the worker process
            _configure_job_logger(logger, self.spec.log_level)
            func(*args)

        return job

    def environment(self, attempt: int) -> dict[str, str]:
        """A command's environment (docs/configuration.md, "Command tasks"): the minimal base,
        the run's identifiers, the names the task passes through, then its own `env`. Settings
        secrets (SECRET_KEY, DATABASE_URL, API keys) never reach a command unless named."""
        env = {key: value for key, value in os.environ.items() if _is_base_variable(key)}
        env.setdefault("PATH", DEFAULT_PATH)
        env.setdefault("HOME", os.path.expanduser("~"))
        env.update(
            CRONJOBS_TASK=self.spec.name,
            CRONJOBS_RUN_ID=self.run_id,
            CRONJOBS_ATTEMPT=str(attempt),
            CRONJOBS_TRIGGER=self.trigger,
            CRONJOBS_HOST=self.host,
        )
        if slot := self.local_slot():
            env["CRONJOBS_SCHEDULED_FOR"] = slot.isoformat()
        env.update((key, os.environ[key]) for key in self.spec.pass_env if key in os.environ)
        env.update(self.spec.env)
        return env

    def local_slot(self) -> dt.datetime | None:
        """The slot on the task's wall clock, as the job sees it (its business day)."""
        if self.scheduled_for is None:
            return None
        return schedules.in_zone(self.scheduled_for, slots.zone_of(self.spec))

    def limits(self) -> Limits:
        return Limits(
            timeout=self.spec.timeout,
            memory_limit=self.spec.memory_limit,
            grace=settings.CRONJOBS_KILL_GRACE,
            output_cap=settings.CRONJOBS_OUTPUT_TAIL,
        )

    def finish(self, row: Execution, result: AttemptResult, live: LiveTail | None = None) -> None:
        """Finalise the attempt's row and write both log files. Its output is the live tail's
        (`live`), so the finished row's offsets continue the ones the live view followed."""
        if live is not None:
            live.finish()
            result.output, row.output_bytes = live.text(), live.size
        row.status = result.status
        row.finished_at = timezone.now()
        row.duration = round(result.duration, 3)
        row.exit_code = result.exit_code
        row.signal = result.signal
        row.peak_rss_bytes = result.peak_rss_bytes
        row.memory_added_bytes = result.memory_added_bytes
        row.cpu_user = round(result.cpu_user, 3)
        row.cpu_system = round(result.cpu_system, 3)
        row.output = result.output
        row.error = result.error
        row.traceback = result.traceback
        if result.status == Status.CANCELLED and self.lease:
            row.stopped_by = self.lease.stop_requested_by[:150]
            row.error = f"stopped by {self.lease.stop_requested_by}"
        self.save(row)
        level = "INFO" if result.status == Status.SUCCEEDED else "ERROR"
        summary = f" ({result.error})" if result.error else ""
        logs.write(
            level,
            self.spec.name,
            f"run={self.run_id[:8]} attempt {row.attempt}/{self.spec.max_attempts} "
            f"{result.status} in {result.duration:.2f}s peak={result.peak_rss_bytes}B"
            f"{_added_text(result.memory_added_bytes)}{summary}",
        )
        logs.write_metrics(metrics_record(self.spec.name, row))


# The metrics line names a column in seconds with `_s`; every other key is the column's name.
METRICS_KEYS = {"duration": "duration_s", "cpu_user": "cpu_user_s", "cpu_system": "cpu_system_s"}
METRICS_COLUMNS = Execution.columns(
    leaving_out={
        "id": "one database's numbering; run_id and attempt name the attempt on every host",
        "output": "up to 64 KiB; the daily log has every line of it",
        "traceback": "up to 64 KiB; the error summary is in the line, the rest on its page",
    }
)


def metrics_record(task: str, row: Execution) -> dict[str, Any]:
    """The attempt's line in cron-metrics-YYYY-MM-DD.log: its columns (the task by name,
    times in ISO 8601) and the job's own memory figure."""
    record: dict[str, Any] = {}
    for name, value in row.readings(METRICS_COLUMNS):
        if name == "task":
            value = task
        elif isinstance(value, dt.datetime):
            value = value.isoformat()
        record[METRICS_KEYS.get(name, name)] = value
    return record


WAIT_POLL = 1.0  # seconds between looks at a held lease (overlap = "wait" or "replace")
SKIP_HOST = "host"  # not a row's skip_reason: a pinned task on another host records nothing
SKIP_NOT_A_SLOT = "not_a_slot"  # nor this: a cron call at no slot of the task records nothing
SKIP_TAKEN_OVER = "taken_over"  # nor this: its dispatcher's claim was taken over, the taker runs it


@dataclasses.dataclass(frozen=True)
class Claimed:
    """A slot a dispatcher claimed for this invocation under `token` (cronjobs/supervisor/
    dispatch.py); the invocation takes the claim over instead of claiming."""

    slot: dt.datetime
    token: str

    def found(self) -> slots.Slot:
        return slots.Slot(self.slot, lag=(timezone.now() - self.slot).total_seconds())


MEMORY_EVERY = 10.0  # seconds between writes of a running attempt's memory


DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
BASE_VARIABLES = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ")


def _is_base_variable(name: str) -> bool:
    return name in BASE_VARIABLES or name.startswith("LC_")


def _added_text(added: int | None) -> str:
    return "" if added is None else f" added={added}B"


def _holder_text(holder: Lease | None) -> str:
    if holder is None or not holder.run_id:
        return "another invocation took the lease first"
    since = (
        timezone.localtime(holder.acquired_at).strftime("%H:%M:%S") if holder.acquired_at else "?"
    )
    return (
        f"run {holder.run_id[:8]} on {holder.host} (pid {holder.pid}) holds the lease since {since}"
    )


def _configure_job_logger(logger: logging.Logger, level: str) -> None:
    """The job's own lines go to its stderr (so into the captured output and the daily log) at
    the task's log_level, whatever the project's logging configuration says."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def new_run_id() -> str:
    return uuid.uuid4().hex


def start_in_background(
    task_name: str,
    trigger: str,
    env: dict[str, str] | None = None,
    run_id: str = "",
    slot: dt.datetime | None = None,
) -> str:
    """Start `manage.py runjob <task>` detached from the caller (admin or API "run now") and
    return its run id at once; the run records itself like any other.

    The run is started through `sh -c '"$@" &'`, which exits at once and is reaped here: the
    runjob process is then init's child, not ours, so a long-lived web worker never collects
    `<defunct>` entries for the runs it started."""
    run_id = run_id or new_run_id()
    launcher = subprocess.Popen(
        [
            "/bin/sh",
            "-c",
            '"$@" &',
            "sh",
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "runjob",
            task_name,
            "--trigger",
            trigger,
            "--run-id",
            run_id,
            *(["--slot", slot.isoformat()] if slot else []),
        ],
        cwd=settings.BASE_DIR,
        env=env or os.environ.copy(),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    launcher.wait()
    return run_id


def spool_not_run(task_name: str, trigger: str, run_id: str | None, exc: Exception) -> None:
    """Without the database there is no lease, so the job must not run (another host may be
    running it). Spool a failed attempt so the history shows the missed run."""
    now = timezone.now()
    row = Execution(
        run_id=run_id or new_run_id(),
        attempt=1,
        trigger=trigger,
        status=Execution.Status.FAILED,
        host=settings.CRONJOBS_HOST,
        pid=os.getpid(),
        started_at=now,
        finished_at=now,
        duration=0.0,
        error=f"not run: database unreachable ({exc})"[:2000],
    )
    spool.append(task_name, row)


def run_task(spec: TaskSpec, trigger: str = Execution.Trigger.MANUAL, **kwargs: Any) -> Outcome:
    outcome = Invocation(spec, trigger, **kwargs).run()
    outcome.task = spec.name
    return outcome


def run_chain(
    spec: TaskSpec,
    trigger: str = Execution.Trigger.MANUAL,
    done: set[str] | None = None,
    **kwargs: Any,
) -> list[Outcome]:
    """Run the task, then, after a success, each enabled task declared `after` it (priority
    order, trigger `after`, the upstream's run id on their rows), and theirs in turn. `done`
    names the tasks this invocation has run, so a task downstream of two others runs once."""
    done = set() if done is None else done
    done.add(spec.name)
    outcome = run_task(spec, trigger, **kwargs)
    outcomes = [outcome]
    if outcome.status != Status.SUCCEEDED:
        return outcomes  # a failed, stopped or skipped upstream runs none of them
    downstream = [each for each in registry.downstream(spec.name) if each.name not in done]
    disabled = set(
        Task.objects.filter(name__in=[each.name for each in downstream], enabled=False).values_list(
            "name", flat=True
        )
    )
    for each in downstream:
        if each.name in disabled or each.name in done:
            continue
        logs.write("INFO", each.name, f"runs after {spec.name} (run {outcome.run_id[:8]})")
        outcomes += run_chain(each, Execution.Trigger.AFTER, done, upstream_run_id=outcome.run_id)
    return outcomes
