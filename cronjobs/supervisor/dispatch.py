"""One Django start per host per minute: `manage.py runjob --due` (docs/architecture.md, "The
midnight burst").

A `runjob <task>` started by cron pays for a whole Python and Django start-up (about 0.8 s of
CPU and 55 MiB of memory) before its job runs; a thousand tasks due at midnight cost a quarter
of an hour of CPU and more memory than the host has. cron starts the dispatcher instead, once a
minute on every host, and it

1. takes over the claims of dispatchers that died between claiming a slot and starting it
   (`slots.orphans`), to run them now;
2. finds every task due at the minute cron started it (`slots.find`, read at the moment the
   kernel started this process, as a `runjob --trigger cron` reads it), by priority;
3. while any is due: takes as many of this host's run permits (`HostCap`) as are free, claims
   that many slots in one UPDATE (`slots.claim_many`), and forks one supervisor per slot it won
   from this warm interpreter; a slot another host won is dropped, and one still waiting for a
   permit past its start deadline, or when its next slot has come, is recorded skipped;
4. exits once nothing is due, while the supervisors go on.

Each supervisor is `runjob <task> --trigger cron` in all but its start: the same Invocation with
its timeout, memory limit, retries, lease, fencing, output capture, rows and log lines. It
first swaps the dispatcher's claim token for its own (`slots.take_over`), so a dispatcher
killed between claim and fork leaves claims that any dispatcher or the watchdog takes over
after `ORPHAN_PATIENCE` seconds (at once on the same host, where a dead pid is certain), and of
the late supervisor and the taker exactly one runs the slot.
"""

from __future__ import annotations

import dataclasses
import fcntl
import gc
import os
import select
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from cronjobs import schedules
from cronjobs.models import Execution, Task
from cronjobs.supervisor import db, logs, slots
from cronjobs.supervisor.crontab import scheduled_tasks
from cronjobs.supervisor.registry import registry
from cronjobs.supervisor.runner import EXIT_FAILED, Claimed, Invocation
from cronjobs.supervisor.sync import sync_task
from cronjobs.tasksettings import TaskSpec

# Seconds after which another host's dispatcher claim that no supervisor took over counts as
# dead: a living dispatcher forks the supervisors of a batch within milliseconds of the claim.
ORPHAN_PATIENCE = 30.0
# Seconds between looks for a free run permit while the host is at its cap.
PERMIT_POLL = 0.05

Supervise = Callable[[TaskSpec, Claimed], int]


@dataclasses.dataclass
class Due:
    """A slot of a task that this host may start: claimed by nobody yet, or (`token`) by this
    dispatcher after taking over a dead dispatcher's claim."""

    spec: TaskSpec
    pk: int
    slot: datetime
    token: str = ""
    enabled: bool = True
    # From this moment the slot may not start: its start deadline, or the task's next slot
    # (that slot is the next dispatcher's). Worked out once: the wait loop compares it with
    # the clock for every waiting slot each time it looks for a permit.
    expires_at: datetime = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        following = schedules.next_run(
            self.spec.schedule, after=self.slot, zone=slots.zone_of(self.spec)
        )
        ends = [following] if following is not None else []
        if self.spec.start_deadline is not None:
            ends.append(self.slot + timedelta(seconds=self.spec.start_deadline))
        self.expires_at = min(ends, default=datetime.max.replace(tzinfo=UTC))

    def expired(self, now: datetime) -> str:
        """Why this slot must not start any more; '' while it may."""
        if now <= self.expires_at:
            return ""
        found = slots.Slot(self.slot, lag=(now - self.slot).total_seconds())
        if late := slots.too_late(self.spec, found):
            return f"{late} (waited for one of the host's {settings.CRONJOBS_MAX_RUNNING} runs)"
        return (
            f"still waiting for one of the host's {settings.CRONJOBS_MAX_RUNNING} runs "
            "when its next slot came"
        )


class HostCap:
    """CRONJOBS_MAX_RUNNING run permits on this host, shared by every dispatcher on it (the
    previous minute's may still be waiting): one lock file each, under LOG_DIR/permits/<host>.
    A supervisor holds its permit's flock for as long as it lives, and the kernel lets go of it
    when the supervisor ends, however it ends (SIGKILL included)."""

    def __init__(self, size: int | None = None, host: str = "") -> None:
        self.size = size or settings.CRONJOBS_MAX_RUNNING
        self.directory = Path(settings.LOG_DIR) / "permits" / (host or settings.CRONJOBS_HOST)
        self.directory.mkdir(parents=True, exist_ok=True)

    def take(self, wanted: int) -> list[int]:
        """Up to `wanted` free permits, as locked descriptors (closed on exec, so no job
        inherits one)."""
        permits: list[int] = []
        for number in range(self.size):
            if len(permits) >= wanted:
                break
            fd = os.open(self.directory / f"{number}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
            else:
                permits.append(fd)
        return permits

    def running(self) -> int:
        """Permits held now, by any process on this host."""
        free = self.take(self.size)
        for fd in free:
            os.close(fd)
        return self.size - len(free)


@dataclasses.dataclass
class Report:
    started: list[str] = dataclasses.field(default_factory=list)
    taken_elsewhere: list[str] = dataclasses.field(default_factory=list)
    expired: list[str] = dataclasses.field(default_factory=list)
    taken_over: list[str] = dataclasses.field(default_factory=list)

    def text(self) -> str:
        return (
            f"dispatched {len(self.started)} run(s) on {settings.CRONJOBS_HOST}; "
            f"{len(self.taken_elsewhere)} slot(s) taken by other hosts, "
            f"{len(self.expired)} skipped past their start, "
            f"{len(self.taken_over)} taken over from dead dispatchers"
        )


class Dispatcher:
    """One `runjob --due` pass. `supervise` runs one claimed slot in a forked child and returns
    its exit status (the runjob command's own path for one task)."""

    def __init__(self, supervise: Supervise, cap: HostCap | None = None) -> None:
        self.supervise = supervise
        self.cap = cap or HostCap()
        self.token = slots.Token.DISPATCH.make()
        self.report = Report()
        self.children: set[int] = set()

    def run(self) -> Report:
        now = timezone.now()
        due = self.take_over_orphans() + find_due(now, slots.process_started(now))
        due = self.record_disabled(due)
        # What every supervisor shares stays shared: later garbage collections in the
        # children would otherwise write to (and so copy) every page of this interpreter.
        gc.collect()
        gc.freeze()
        while due:
            due = self.drop_expired(due)
            permits = self.cap.take(len(due)) if due else []
            if due and not permits:
                self.reap()
                # Not time.sleep: under libfaketime with a real monotonic clock (the tests')
                # its absolute-deadline nanosleep fails with EINVAL.
                select.select([], [], [], PERMIT_POLL)
                continue
            batch, due = due[: len(permits)], due[len(permits) :]
            self.start(self.claim(batch), permits)
        self.reap()
        return self.report

    def take_over_orphans(self) -> list[Due]:
        found = take_over_orphans(self.token)
        self.report.taken_over += [item.spec.name for item in found]
        return found

    def record_disabled(self, due: list[Due]) -> list[Due]:
        """A task switched off in the admin records its `disabled` skip, as a per-task call
        does, from here: claimed, then written without a fork or a permit."""
        for item in self.claim([item for item in due if not item.enabled]):
            invocation = Invocation(item.spec, TRIGGER, claimed=Claimed(item.slot, self.token))
            invocation.skip_claimed(Execution.SkipReason.DISABLED, "task is disabled")
        return [item for item in due if item.enabled]

    def drop_expired(self, due: list[Due]) -> list[Due]:
        """Record a skip for each slot that may no longer start (claiming it first, so one
        host records it), keep the others."""
        now = timezone.now()
        kept = []
        for item in due:
            why = item.expired(now)
            if not why:
                kept.append(item)
                continue
            if item.token or self.claim([item]):
                invocation = Invocation(item.spec, TRIGGER, claimed=Claimed(item.slot, self.token))
                invocation.skip_claimed(Execution.SkipReason.DEADLINE, why)
                self.report.expired.append(item.spec.name)
        return kept

    def claim(self, batch: list[Due]) -> list[Due]:
        """The items of `batch` this dispatcher now holds: one UPDATE per distinct slot (one,
        unless this dispatcher started late or took over orphans)."""
        ours = [item for item in batch if item.token]
        by_slot: dict[datetime, list[Due]] = {}
        for item in batch:
            if not item.token:
                by_slot.setdefault(item.slot, []).append(item)
        for slot, items in by_slot.items():
            won = slots.claim_many([item.pk for item in items], slot, self.token)
            for item in items:
                if item.pk in won:
                    ours.append(item)
                else:
                    self.report.taken_elsewhere.append(item.spec.name)
        return ours

    def start(self, claimed: list[Due], permits: list[int]) -> None:
        """Fork one supervisor per claimed slot, each holding one permit; give back the rest."""
        sys.stdout.flush()
        sys.stderr.flush()
        for item, permit in zip(claimed, permits, strict=False):
            pid = os.fork()
            if pid == 0:
                self.child(item)
            os.close(permit)  # the child's copy keeps the lock
            self.children.add(pid)
            self.report.started.append(item.spec.name)
        for permit in permits[len(claimed) :]:
            os.close(permit)

    def child(self, item: Due) -> None:
        """The supervisor: never returns into the dispatcher's loop."""
        code = EXIT_FAILED
        try:
            db.detach_inherited_connections()  # this one's stays the dispatcher's
            os.setsid()  # a signal to the dispatcher's process group leaves the runs alone
            code = self.supervise(item.spec, Claimed(item.slot, self.token))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_FAILED
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def reap(self) -> None:
        """Collect the supervisors that ended, so none lingers as a zombie."""
        for pid in list(self.children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children.discard(pid)


TRIGGER = Execution.Trigger.CRON


def take_over_orphans(token: str) -> list[Due]:
    """Claims of dispatchers that died before starting them (slots.orphans), now `token`'s:
    the caller starts each (a dispatcher forks it, the watchdog starts `runjob --claim`)."""
    found = []
    for task in slots.orphans(ORPHAN_PATIENCE):
        spec = registry.get(task.name)
        if spec is None or task.claimed_slot is None:
            continue
        if not slots.take_over(task.pk, task.claimed_slot, task.claimed_by, token):
            continue  # its supervisor, or another taker, was first
        holder = slots.Holder.read(task.claimed_by)
        who = f"pid {holder.pid} on {holder.host}" if holder else task.claimed_by
        logs.write("WARNING", task.name, f"took over the unstarted claim of dispatcher {who}")
        found.append(Due(spec, task.pk, task.claimed_slot, token=token))
    return found


def find_due(now: datetime, began: datetime) -> list[Due]:
    """Every scheduled task this host may run whose slot at `began` nobody has claimed, by
    priority. One query reads every task's claim; tasks never synced are synced first."""
    host = settings.CRONJOBS_HOST
    found = {}
    for spec in scheduled_tasks():
        # may_be_due first: it rules out nearly every task of a large estate in microseconds.
        if spec.may_run_on(host) and slots.may_be_due(spec, began):
            slot = slots.find(spec, now, began).slot
            if slot is not None:
                found[spec.name] = (spec, slot)
    rows = Task.objects.values_list("pk", "name", "claimed_slot", "enabled")
    claims = {name: (pk, claimed, enabled) for pk, name, claimed, enabled in rows}
    due = []
    for name, (spec, slot) in found.items():
        if name not in claims:
            claims[name] = (sync_task(spec).pk, None, True)
        pk, claimed, enabled = claims[name]
        if claimed is None or claimed < slot:
            due.append(Due(spec, pk, slot, enabled=enabled))
    return due
