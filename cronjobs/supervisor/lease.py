"""Overlap prevention across processes and hosts that share one database (docs/operations.md,
"Lease").

A task has one Lease row. Taking it is a single conditional UPDATE: "set me as holder where the
holder is still the one I saw and its lease has expired by the database's clock". Exactly one
of any number of racing processes matches the WHERE clause; the rest update nothing and skip.
Nobody ever waits on a lock they cannot get. The database clock (NOW()) is the only clock
compared, so hosts with skewed clocks still agree.

The holder renews while its job runs, on a beat of CRONJOBS_LEASE_BEAT seconds (at most a third
of the TTL). The same UPDATE tells it whether an operator asked to stop the run
(cronjobs.actions.stop writes `stop_requested_at` on the lease row), so a stop reaches the right
host within a beat, through the database alone.

If the holder dies (SIGKILL, reboot), renewals stop, the lease expires after CRONJOBS_LEASE_TTL
seconds, and the next invocation takes over and marks the dead run's `running` rows `abandoned`.

Fencing: a holder that cannot renew must not let its job outlive the lease, or another host
takes the lapsed lease and runs a second copy. By its own monotonic clock it knows when the
lease could lapse at the earliest (the moment it sent its last successful renewal, plus the TTL:
the database's clock started that TTL later). Renewals run on a background thread with its own
connection (`Background`), so a frozen connection is a renewal that has not answered, never a
monitor that hangs; `lost()` says when the lease is no longer safe to run under: taken over by
another run, or within `margin` (a third of the TTL) of that earliest lapse. The runner then
stops the job, with a grace short enough (`fence_grace`) for it to be dead with time to spare.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now

from cronjobs import history
from cronjobs.models import Lease, Task
from cronjobs.supervisor.db import Background, ensure_usable_connection

log = logging.getLogger(__name__)


NO_STOP = {"stop_requested_at": None, "stop_requested_by": ""}


def request_stop(task: Task, by: str) -> str:
    """Ask the holder of the task's lease to stop its run; returns the run id, or "" when no
    run holds the lease (nothing to stop). The holder sees it on its next beat."""
    held = Lease.objects.filter(task=task, expires_at__gt=Now()).exclude(run_id="")
    run_id = held.values_list("run_id", flat=True).first()
    if run_id and held.filter(run_id=run_id).update(stop_requested_at=Now(), stop_requested_by=by):
        return run_id
    return ""


def _db_now_plus(seconds: float) -> ExpressionWrapper[CombinedExpression]:
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


@dataclasses.dataclass
class Taken:
    ok: bool
    holder: Lease | None = None  # who has it, when not ok
    abandoned_run: str = ""  # the expired holder we replaced, if any


@dataclasses.dataclass(frozen=True)
class Answer:
    """What one renewal found: renewed (sent at `sent`), a stop request, or another holder."""

    sent: float
    renewed: bool = False
    stop_requested_by: str = ""
    taken_by: str = ""


class TaskLease:
    """The lease of one task for one run. `acquire()` once, `renew_if_due()` and `lost()` on
    every beat of the monitor (neither ever waits on the database), `release()` at the end."""

    def __init__(self, task: Task, run_id: str, host: str, ttl: float | None = None):
        self.task, self.run_id, self.host = task, run_id, host
        self.ttl = ttl if ttl is not None else settings.CRONJOBS_LEASE_TTL
        self.beat = min(self.ttl / 3, settings.CRONJOBS_LEASE_BEAT)
        self.margin = self.ttl / 3  # stop the job this long before the lease could lapse
        # The job gets SIGKILL half-way through the margin at the latest.
        self.fence_grace = min(float(settings.CRONJOBS_KILL_GRACE), self.margin / 2)
        self.renewed_at = 0.0  # monotonic: when the last successful renewal (or take) was sent
        self.tried_at = 0.0  # monotonic: when the last renewal was sent
        self.failure = ""  # why the latest renewal failed; "" once one succeeds again
        self.taken_by = ""  # the run that took the lease over, once seen
        self.stop_requested_by = ""  # set once the holder sees a stop request
        self.background = Background(f"lease-{task.name}", timeout=self.beat)
        self._renewal: concurrent.futures.Future[Answer] | None = None

    @property
    def lapses_at(self) -> float:
        """The monotonic moment the lease could lapse at the earliest."""
        return self.renewed_at + self.ttl

    def acquire(self) -> Taken:
        """1. Read the current holder. 2. Compare-and-set it to us if it is free or expired
        (or its process is gone on this very host). 3. On success, abandon the replaced run."""
        current, _ = Lease.objects.get_or_create(task=self.task)
        free = Q(expires_at__isnull=True) | Q(expires_at__lt=Now())
        reserved = bool(current.run_id) and current.run_id == self.run_id
        if reserved or (current.run_id and self._holder_is_dead_here(current)):
            # Reserved for this very run by a run-now request (`reserve` below), or its holder
            # is gone: no need to wait for the lease to expire.
            free = Q()
        # A stop requested while a run-now was pending is for this run: keep it then.
        clear_stop = {} if reserved else {"stop_requested_at": None, "stop_requested_by": ""}
        sent = time.monotonic()
        taken = Lease.objects.filter(free, task=self.task, run_id=current.run_id).update(
            run_id=self.run_id,
            host=self.host,
            pid=os.getpid(),
            acquired_at=Now(),
            expires_at=_db_now_plus(self.ttl),
            **clear_stop,
        )
        if not taken:
            return Taken(ok=False, holder=Lease.objects.filter(task=self.task).first())
        self.renewed_at = self.tried_at = sent
        if current.run_id and not reserved:
            abandon_run(current)
            return Taken(ok=True, abandoned_run=current.run_id)
        return Taken(ok=True)

    def renew_if_due(self) -> str:
        """The monitor's beat; returns who asked to stop the run, or "" (the usual answer).
        Never waits: it takes the answer of the renewal sent on an earlier beat, if there is
        one, and sends the next on the background thread when the beat is due and the last one
        has answered."""
        self._take_answer()
        due = time.monotonic() - self.tried_at >= self.beat
        if due and not (self.stop_requested_by or self.taken_by):
            sent = time.monotonic()
            future = self.background.offer(lambda: self._renew(sent))
            if future is not None:
                self.tried_at, self._renewal = sent, future
        return self.stop_requested_by

    def lost(self) -> str:
        """Why the job may no longer run under this lease, or "" while it may: another run
        took the lease over, or no renewal succeeded for so long that the lease could lapse
        within the margin."""
        self._take_answer()
        if self.taken_by:
            return f"lease lost: taken over by {self.taken_by}"
        now = time.monotonic()
        left = self.lapses_at - now
        if left > self.margin:
            return ""
        said = [f"last renewal failed: {self.failure[:300]}"] if self.failure else []
        if self._renewal is not None:
            said.append(f"a renewal unanswered for {now - self.tried_at:.1f} s")
        why = "; ".join(said) or "no renewal could be sent"
        return (
            f"lease lost: not renewed for {now - self.renewed_at:.1f} s ({why}); it could "
            f"lapse in {max(left, 0):.1f} s (CRONJOBS_LEASE_TTL={self.ttl:g})"
        )

    def _take_answer(self) -> None:
        future = self._renewal
        if future is None or not future.done():
            return
        self._renewal = None
        try:
            answer = future.result()
        except DatabaseError as exc:
            self.failure = str(exc).strip() or type(exc).__name__
            log.warning("lease of %s not renewed: %s", self.task.name, self.failure)
            return
        if answer.renewed:
            self.renewed_at, self.failure = max(self.renewed_at, answer.sent), ""
        elif answer.taken_by:
            self.taken_by = answer.taken_by
            log.warning(
                "lease of %s was taken over by %s while run %s was running",
                self.task.name,
                answer.taken_by,
                self.run_id,
            )
        else:
            self.stop_requested_by = answer.stop_requested_by or "an operator"

    def _renew(self, sent: float) -> Answer:
        """On the background thread: one UPDATE a beat. It matches nothing when the lease was
        lost or a stop is pending, and only then is the row read to tell which."""
        ensure_usable_connection()
        mine = Lease.objects.filter(task=self.task, run_id=self.run_id)
        if mine.filter(stop_requested_at__isnull=True).update(expires_at=_db_now_plus(self.ttl)):
            return Answer(sent, renewed=True)
        row = Lease.objects.filter(task=self.task).values("run_id", "host", "stop_requested_by")
        found = row.first()
        if found is None or found["run_id"] != self.run_id:
            holder = f"run {found['run_id'][:8]} on {found['host']}" if found else "nobody"
            if found is not None and not found["run_id"]:
                holder = "nobody (the lease was freed)"
            return Answer(sent, taken_by=holder)
        return Answer(sent, stop_requested_by=found["stop_requested_by"])

    def release(self) -> None:
        self.background.close()
        try:
            ensure_usable_connection()
            Lease.objects.filter(task=self.task, run_id=self.run_id).update(
                run_id="", host="", pid=None, expires_at=None, **NO_STOP
            )
        except DatabaseError as exc:  # it will expire by itself
            log.warning("lease of %s not released: %s", self.task.name, exc)

    def _holder_is_dead_here(self, lease: Lease) -> bool:
        """Same host, and no runjob process with that pid: it cannot renew, take over now."""
        if lease.host != self.host or not lease.pid:
            return False
        try:
            import psutil

            cmdline = psutil.Process(lease.pid).cmdline()
        except Exception:  # NoSuchProcess, AccessDenied, zombie: not a live runjob
            return True
        return "runjob" not in cmdline


def reserve(task: Task, run_id: str, host: str, ttl: float | None = None) -> bool:
    """Hold a free lease for a run that is about to start (run now): the run's own
    `acquire()` takes it over, and everything else (another run-now, a cron invocation) sees
    it held. False, changing nothing, when the lease is held. Lapses after the TTL if the run
    never starts."""
    current, _ = Lease.objects.get_or_create(task=task)
    free = Q(expires_at__isnull=True) | Q(expires_at__lt=Now())
    ttl = ttl if ttl is not None else settings.CRONJOBS_LEASE_TTL
    taken = Lease.objects.filter(free, task=task, run_id=current.run_id).update(
        run_id=run_id,
        host=host,
        pid=None,
        acquired_at=Now(),
        expires_at=_db_now_plus(ttl),
        **NO_STOP,
    )
    if taken and current.run_id:
        abandon_run(current)  # an expired holder, as in `acquire`
    return bool(taken)


def unreserve(task: Task, run_id: str) -> None:
    """Give back a reservation whose run could not be started."""
    Lease.objects.filter(task=task, run_id=run_id).update(
        run_id="", host="", pid=None, expires_at=None, **NO_STOP
    )


def abandon_run(lease: Lease) -> int:
    """Mark the `running` rows of a run whose holder stopped renewing as `abandoned`."""
    from cronjobs.supervisor import alerts

    why = f"supervisor on {lease.host} (pid {lease.pid}) stopped renewing its lease"
    count = history.abandon(lease.run_id, why)
    if count:
        alerts.raise_alert(lease.task, alerts.Kind.ABANDONED, f"run {lease.run_id[:8]}: {why}")
    return count


def reap_expired() -> int:
    """Free leases whose holders died and abandon their runs, even if the task is not invoked
    again soon (a daily job). Called by the watchdog. Returns the number of runs abandoned."""
    reaped = 0
    expired = Lease.objects.select_related("task").exclude(run_id="").filter(expires_at__lt=Now())
    for lease in expired:
        freed = Lease.objects.filter(task=lease.task, run_id=lease.run_id, expires_at__lt=Now())
        if freed.update(run_id="", host="", pid=None, expires_at=None, **NO_STOP):
            abandon_run(lease)
            reaped += 1
    return reaped
