"""The circuit breaker (docs/operations.md, "Circuit breaker"), one CircuitState row per task.

    closed --(threshold failed attempts within the window)--> open
    open --(cooldown over; one invocation wins the compare-and-set)--> half_open (its trial)
    half_open --trial succeeds--> closed        half_open --trial fails--> open again

Every transition is a conditional UPDATE on the state the caller saw, so racing invocations on
several hosts agree on exactly one winner. A run reads its row once (`consult`) and keeps it,
moved along by the transitions it wins, for every attempt after (`record_attempt`); the row is
read again only when a transition finds it changed by someone else. Times are the application's
clock (timezone.now), which tests travel with time-machine. Failures are attempts with a failure
status; skips never count.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from cronjobs.models import CircuitState, Execution, Task
from cronjobs.supervisor import alerts

State = CircuitState.State


@dataclasses.dataclass
class Decision:
    allowed: bool
    trial: bool = False
    reason: str = ""
    state: CircuitState | None = None  # the row as this run saw it; None with the breaker off


def state_of(task: Task) -> CircuitState:
    state, _ = CircuitState.objects.get_or_create(task=task)
    return state


def consult(task: Task, run_id: str, enabled: bool = True) -> Decision:
    """May this invocation run? Reserves the half-open trial for it when the cooldown is over."""
    if not enabled:
        return Decision(True)
    current = state_of(task)
    now = timezone.now()
    if current.state == State.CLOSED:
        return Decision(True, state=current)
    opened_at = current.opened_at or now  # set by every transition out of CLOSED
    reopens_at = opened_at + timedelta(seconds=settings.CRONJOBS_CIRCUIT_COOLDOWN)
    if current.state == State.OPEN and now < reopens_at:
        return Decision(False, reason=f"circuit open until {_local(reopens_at)}")
    if current.state == State.HALF_OPEN and not _trial_is_stale(task, current, now):
        return Decision(
            False, reason=f"circuit half-open: run {current.trial_run_id[:8]} is the trial"
        )
    won = _transition(current, State.HALF_OPEN, trial_run_id=run_id, changed_at=now)
    if won:
        return Decision(True, trial=True, state=current)
    return Decision(False, reason="circuit half-open: another invocation took the trial")


def record_attempt(task: Task, run_id: str, row: Execution, current: CircuitState) -> bool:
    """Update the breaker after one attempt, from `current`, the row as this run last saw it
    (`Decision.state`). Returns True when the circuit is now open, so the runner stops
    retrying."""
    now = timezone.now()
    is_trial = current.state == State.HALF_OPEN and current.trial_run_id == run_id
    if row.status == Execution.Status.SUCCEEDED:
        if is_trial and _transition(
            current, State.CLOSED, opened_at=None, trial_run_id="", failure_count=0, changed_at=now
        ):
            alerts.resolve_kinds(task, [alerts.Kind.CIRCUIT_OPEN], "trial run succeeded")
        return False
    if not row.is_failure:
        return False
    if is_trial:
        return _open(task, current, now, "the half-open trial run failed")
    if current.state != State.CLOSED:
        return current.state == State.OPEN
    failures = recent_failures(task, now, current)
    if failures < settings.CRONJOBS_CIRCUIT_THRESHOLD:
        return False
    return _open(task, current, now, f"{failures} failed attempts within {_window_text()}")


def release_trial(task: Task, run_id: str) -> None:
    """The trial could not run after all (the lease was busy): let the next invocation try."""
    CircuitState.objects.filter(task=task, state=State.HALF_OPEN, trial_run_id=run_id).update(
        state=State.OPEN, trial_run_id=""
    )


def reset(task: Task, by: str = "") -> None:
    """Close the breaker by hand (admin action, `manage.py resetcircuit`)."""
    CircuitState.objects.update_or_create(
        task=task,
        defaults={
            "state": State.CLOSED,
            "opened_at": None,
            "trial_run_id": "",
            "failure_count": 0,
            "changed_at": timezone.now(),
        },
    )
    why = f"circuit reset by {by}" if by else "circuit reset by hand"
    alerts.resolve_kinds(task, [alerts.Kind.CIRCUIT_OPEN], why)


def recent_failures(task: Task, now: datetime, current: CircuitState) -> int:
    """Failed attempts within the window, counted from `current`'s last change at the earliest:
    a reset or a good trial starts afresh."""
    since = max(now - timedelta(seconds=settings.CRONJOBS_CIRCUIT_WINDOW), current.changed_at)
    return Execution.objects.failures().filter(task=task, finished_at__gte=since).count()


def _open(task: Task, current: CircuitState, now: datetime, why: str) -> bool:
    """Open the circuit; True when it is open now, by this run's transition or another's."""
    failures = recent_failures(task, now, current)
    if not _transition(
        current, State.OPEN, opened_at=now, trial_run_id="", changed_at=now, failure_count=failures
    ):
        # Changed under us (a reset by hand, another host's trial): ask the row as it is now.
        current.refresh_from_db()
        return current.state == State.OPEN
    cooldown = settings.CRONJOBS_CIRCUIT_COOLDOWN
    alerts.raise_alert(
        task, alerts.Kind.CIRCUIT_OPEN, f"circuit opened: {why}; runs skipped for {cooldown} s"
    )
    return True


def _transition(current: CircuitState, to: str, **fields: object) -> bool:
    """Compare-and-set from the state the caller saw (state, trial and when it changed). The
    winner's `current` takes the new values, so it stays the row as it is in the database."""
    won = CircuitState.objects.filter(
        task_id=current.task_id,
        state=current.state,
        trial_run_id=current.trial_run_id,
        changed_at=current.changed_at,
    ).update(state=to, **fields)
    if won:
        current.state = to
        for name, value in fields.items():
            setattr(current, name, value)
    return bool(won)


def _trial_is_stale(task: Task, current: CircuitState, now: datetime) -> bool:
    """A trial whose supervisor died would hold the circuit half-open forever; give it the
    longest time a run can take, then let another invocation be the trial."""
    attempts = task.max_attempts * (task.timeout + settings.CRONJOBS_KILL_GRACE)
    longest = attempts + (task.max_attempts - 1) * task.retry_delay + settings.CRONJOBS_LEASE_TTL
    return now > current.changed_at + timedelta(seconds=longest)


def _window_text() -> str:
    return f"{settings.CRONJOBS_CIRCUIT_WINDOW // 60} min"


def _local(when: datetime) -> str:
    return timezone.localtime(when).strftime("%Y-%m-%d %H:%M:%S %Z")
