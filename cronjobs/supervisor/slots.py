"""One run per slot (docs/operations.md, "Several hosts"): what a `runjob --trigger cron` call
checks before it takes the lease.

Every host installs the same crontab, so every host's cron starts `runjob <task> --trigger cron`
at each scheduled minute. Each invocation works out its slot (the task's latest scheduled time
at or before now, read in the task's `time_zone`) and

1. exits 3 at once, recording nothing, when no slot of the task passed within
   CRONJOBS_SLOT_TOLERANCE seconds: the line fired at an hour the task's zone does not want
   (a zone task's line covers every UTC offset the zone takes) or someone typed the line by hand;
2. records a `skipped` row (reason `deadline`) when it began more than the task's
   `start_deadline` after the slot;
3. claims the slot with a compare-and-set on `Task.claimed_slot` (the column only moves
   forward), so of all the hosts that fire for one slot exactly one goes on; the others record
   `skipped` (reason `slot_taken`). The watchdog's catch-up claims a missed slot the same way.

The claim is one conditional UPDATE of one row by primary key: no lock is held while the job
runs (the lease does that), and a claim cannot be taken back, so a host whose job then fails
does not let another host run the same slot again; the retries are the task's `max_attempts`.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import os
import time
from datetime import UTC, datetime, timedelta

import psutil
from django.conf import settings
from django.db.models import Q, QuerySet

from cronjobs import schedules
from cronjobs.models import Execution, Task
from cronjobs.tasksettings import TaskSpec


@dataclasses.dataclass(frozen=True)
class Slot:
    """The slot a cron invocation belongs to, or why it belongs to none (`slot` is None)."""

    slot: datetime | None
    lag: float = 0.0  # seconds from the slot to the moment the invocation looked
    why: str = ""


def zone_of(spec: TaskSpec) -> str:
    return spec.time_zone or settings.TIME_ZONE


def find(spec: TaskSpec, now: datetime, began: datetime | None = None) -> Slot:
    """The slot of a cron invocation that cron started at `began` (default: `now`) and that
    looks at `now`; `why` says why there is none. The slot is read at `began`, so a call that
    a busy host took more than a minute to start still belongs to the minute cron fired it in,
    not to the next one; its lag runs to `now`."""
    zone = zone_of(spec)
    began = began if began is not None and began <= now else now
    # "At or before": cron starts us at the slot's very second, a little after it.
    slot = schedules.previous_run(spec.schedule, before=began + _INSTANT, zone=zone)
    tolerance = settings.CRONJOBS_SLOT_TOLERANCE
    if slot is not None and (began - slot).total_seconds() <= tolerance:
        # In UTC: an aware time in a repeated hour compares unequal with any other zone's.
        return Slot(slot.astimezone(UTC), lag=(now - slot).total_seconds())
    last = f"the last was {slot.strftime('%Y-%m-%d %H:%M %Z')}" if slot else "it has none"
    return Slot(None, why=f"not a slot of {spec.schedule!r} in {zone} ({last})")


def may_be_due(spec: TaskSpec, began: datetime) -> bool:
    """False when `find` would certainly find no slot for a call cron started at `began`: a
    check of the tolerance's few minutes against the compiled schedule, for a caller that asks
    every declared task each minute (find reads the last slot in full, about 50 microseconds a
    task, to say which it was)."""
    since = began - timedelta(seconds=settings.CRONJOBS_SLOT_TOLERANCE)
    return schedules.may_fire_between(spec.schedule, since, began, zone_of(spec))


def process_started(now: datetime) -> datetime:
    """When the kernel started this process (cron's shell exec'd us then), or `now` when that
    is not believable: after `now`, or further back than the tolerance (a clock moved by
    libfaketime or by hand)."""
    try:
        since_boot = psutil.Process().create_time() - psutil.boot_time()  # to the clock tick
    except psutil.Error:
        return now
    # Not create_time() itself: the kernel's boot time (/proc/stat) is whole seconds, so it
    # reads up to a second early, and a call cron started at 10:00:00.3 would find 09:59's slot.
    boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    # The start is counted in whole clock ticks, rounded down: its tick's end is the latest it
    # can be, and cron never starts a job before the minute it fires for.
    tick = 1 / os.sysconf("SC_CLK_TCK")
    started = datetime.fromtimestamp(boot + since_boot + tick, UTC)
    if (now - started).total_seconds() > settings.CRONJOBS_SLOT_TOLERANCE:
        return now
    return min(started, now)


def too_late(spec: TaskSpec, found: Slot) -> str:
    """Why the invocation is past the task's start deadline, or ''."""
    if spec.start_deadline is None or found.lag <= spec.start_deadline:
        return ""
    return (
        f"began {found.lag:.1f}s after its slot {_when(found.slot, spec)}, past the start "
        f"deadline of {spec.start_deadline:g}s"
    )


def claim(task: Task, slot: datetime, **also: object) -> bool:
    """Claim (task, slot) for this invocation: True for exactly one caller per slot, whatever
    the host. A compare-and-set on the task's row, checked by its row count; `also` are
    columns written in the same UPDATE (the watchdog's `caught_up_slot`)."""
    also.setdefault("claimed_by", Token.RUN.make())
    return bool(_unclaimed(slot).filter(pk=task.pk).update(claimed_slot=slot, **also))


class Token(enum.Enum):
    """Who holds a task's claimed slot (`Task.claimed_by`): `dispatch ...` while a dispatcher
    (cronjobs/supervisor/dispatch.py) has claimed it and not yet started its supervisor,
    `run ...` once a supervisor has it. A supervisor forked by a dispatcher swaps the first
    for the second (`take_over`), and so does a dispatcher or watchdog that finds a dispatcher
    died between the claim and the start (`orphans`): one compare-and-set each, so of the two
    exactly one runs the slot."""

    DISPATCH = "dispatch"
    RUN = "run"

    def make(self, pid: int = 0, host: str = "") -> str:
        """`<kind> <unix time> <pid> <host>`: the time says how old an unstarted claim is."""
        host = host or settings.CRONJOBS_HOST
        return f"{self.value} {time.time():.0f} {pid or os.getpid()} {host}"[:255]


@dataclasses.dataclass(frozen=True)
class Holder:
    kind: str
    since: float
    pid: int
    host: str

    @classmethod
    def read(cls, token: str) -> Holder | None:
        parts = token.split(" ", 3)
        if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
            return None
        return cls(parts[0], float(parts[1]), int(parts[2]), parts[3])

    def gone(self, now: float, patience: float) -> bool:
        """A dispatcher's claim whose supervisor never took it over: its process is dead (this
        host), or it is older than `patience` (another host: a living dispatcher starts the
        supervisors of a batch within milliseconds of claiming it)."""
        if self.kind != Token.DISPATCH.value:
            return False
        if self.host == settings.CRONJOBS_HOST:
            return not _alive(self.pid, self.since)
        return now - self.since > patience


def claim_many(task_ids: list[int], slot: datetime, token: str) -> set[int]:
    """Claim `slot` for each of the tasks in one UPDATE: the ids this caller won. The UPDATE
    writes `token` on every row it moves; reading back the rows that carry it tells the
    winners, since a row another dispatcher moved first carries the other's token."""
    if not task_ids:
        return set()
    _unclaimed(slot).filter(pk__in=task_ids).update(claimed_slot=slot, claimed_by=token)
    won = Task.objects.filter(pk__in=task_ids, claimed_slot=slot, claimed_by=token)
    return set(won.values_list("pk", flat=True))


def take_over(task_id: int, slot: datetime, token: str, new_token: str = "") -> bool:
    """Swap the claim of (task, slot) from `token` to `new_token` (default: this process's
    run token); False when someone else swapped it first."""
    new_token = new_token or Token.RUN.make()
    moved = Task.objects.filter(pk=task_id, claimed_slot=slot, claimed_by=token)
    return bool(moved.update(claimed_by=new_token))


def orphans(patience: float = 30.0) -> list[Task]:
    """Tasks whose claimed slot a dispatcher took and died before starting (Holder.gone),
    within the slot tolerance: the caller takes each over and runs or reports it."""
    now = time.time()
    since = datetime.fromtimestamp(now - settings.CRONJOBS_SLOT_TOLERANCE, UTC)
    claimed = Task.objects.filter(
        claimed_by__startswith=f"{Token.DISPATCH.value} ", claimed_slot__gte=since
    )
    return [
        task
        for task in claimed
        if (holder := Holder.read(task.claimed_by)) and holder.gone(now, patience)
    ]


def _unclaimed(slot: datetime) -> QuerySet[Task]:
    return Task.objects.filter(Q(claimed_slot__isnull=True) | Q(claimed_slot__lt=slot))


def _alive(pid: int, since: float) -> bool:
    """Is `pid` the process that wrote a token at `since` (not a later one given its pid)?"""
    try:
        return psutil.Process(pid).create_time() <= since + 1
    except psutil.Error:
        return False


def taken_text(task: Task, spec: TaskSpec, slot: datetime) -> str:
    """The skip's reason: which slot, and which run has it when the history says so."""
    holder = (
        Execution.objects.filter(task=task, started_at__gte=slot, scheduled_for=slot)
        .exclude(status=Execution.Status.SKIPPED)
        .order_by("started_at", "id")
        .first()
    )
    who = f" by run {holder.run_id[:8]} on {holder.host}" if holder else ""
    return f"slot {_when(slot, spec)} already claimed{who}"


def jitter_delay(spec: TaskSpec, host: str) -> float:
    """Seconds to wait before the first attempt: below `jitter`, the same for the same task and
    host every time (Jenkins' `H`), so a host's tasks spread the same way every day."""
    if not spec.jitter:
        return 0.0
    digest = hashlib.sha256(f"{spec.name}@{host}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return round(fraction * spec.jitter, 3)


def _when(slot: datetime | None, spec: TaskSpec) -> str:
    if slot is None:
        return "?"
    return schedules.in_zone(slot, zone_of(spec)).strftime("%Y-%m-%d %H:%M %Z")


_INSTANT = timedelta(microseconds=1)
