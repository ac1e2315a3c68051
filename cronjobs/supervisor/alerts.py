"""Alerts (docs/operations.md, "Alerts"): raise, de-duplicate, resolve, notify.

At most one unresolved alert exists per (task, kind); the unique `open_key` column enforces it,
so two hosts raising the same alert at once end with one row and two occurrences. Receivers
(cronjobs/supervisor/notify.py: Apprise URLs in ALERT_URLS, email to ALERT_EMAILS, a JSON POST
to ALERT_WEBHOOK_URL) hear about an alert when it opens, again at most every ALERT_REPEAT_HOURS
while it stays open, and when it resolves. A receiver that fails or hangs is logged (its URL
redacted) and given up after ALERT_TIMEOUT seconds; it never fails a run.

A snoozed task (`Task.snoozed_until` in the future) still records its alerts, but nobody is
notified; when the snooze ends (the watchdog's sweep, or an operator clearing it) each alert of
the task that is still open is notified once. A `mute` maintenance window (cronjobs/windows.py)
silences its tasks the same way, and when it ends (`end_windows`) each alert of its tasks that
was raised meanwhile and is still open is notified once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from cronjobs import windows
from cronjobs.models import Alert, Execution, MaintenanceWindow, Task
from cronjobs.reporting import stats
from cronjobs.supervisor import notify
from cronjobs.tasksettings import TaskSpec

if TYPE_CHECKING:  # the runner imports this module
    from cronjobs.supervisor.runner import Outcome

log = logging.getLogger(__name__)
Kind = Alert.Kind
State = Alert.State
Status = Execution.Status

SEVERITY: dict[str, Alert.Severity] = {
    Kind.FAILED: Alert.Severity.CRITICAL,
    Kind.CIRCUIT_OPEN: Alert.Severity.CRITICAL,
    Kind.ABANDONED: Alert.Severity.CRITICAL,
    Kind.LATE: Alert.Severity.CRITICAL,
    Kind.SLOW: Alert.Severity.WARNING,
    Kind.MEMORY: Alert.Severity.WARNING,
    Kind.SUCCESS_RATE: Alert.Severity.WARNING,
    Kind.OUTAGE: Alert.Severity.CRITICAL,
}
OUTAGE_TASK = "watchdog"  # an outage is no one task's: it is filed under the supervisor's own


RATE_MIN_ATTEMPTS = 5


def _key(task: Task, kind: str) -> str:
    return f"{task.pk}:{kind}"


def raise_alert(task: Task, kind: str, message: str, execution: Execution | None = None) -> Alert:
    """Open an alert, or count one more occurrence of the unresolved one; notify if due.
    `execution` is the attempt the notification links to."""
    now = timezone.now()
    alert = _bump(task, kind, message, now)
    if alert is None:
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    task=task,
                    kind=kind,
                    severity=SEVERITY[kind],
                    open_key=_key(task, kind),
                    message=message,
                    first_seen=now,
                    last_seen=now,
                )
        except IntegrityError:  # another process opened it a moment ago
            alert = _bump(task, kind, message, now)
    if alert is None:  # opened and resolved by others in the meantime: open a fresh one
        return raise_alert(task, kind, message, execution)
    alert.execution_pk = execution.pk if execution else None  # type: ignore[attr-defined]
    _notify_if_due(alert, now)
    return alert


def _bump(task: Task, kind: str, message: str, now: datetime) -> Alert | None:
    key = _key(task, kind)
    updated = Alert.objects.filter(open_key=key).update(
        occurrences=F("occurrences") + 1, last_seen=now, message=message
    )
    return Alert.objects.filter(open_key=key).first() if updated else None


def check_success_rate(task: Task, now: datetime | None = None) -> float | None:
    """Raise `success_rate` while the task's rate over its window is under its target; resolve
    it once the rate is back (after each run; the watchdog judges every task at once with
    `judge_success_rate`). The rate is the one the pages show for the same window
    (reporting.stats), a percent like the target. Returns the rate."""
    now = now or timezone.now()
    since = now - timedelta(seconds=task.success_window)
    summaries = stats.task_summaries(since, now, with_p95=False, task_ids=[task.pk])
    return judge_success_rate(task, summaries.get(task.pk) or stats.TaskSummary(task.pk))


def judge_success_rate(
    task: Task, summary: stats.TaskSummary, has_alert: bool = True
) -> float | None:
    """The `success_rate` alert from the task's summary over its `success_window`. Fewer than
    RATE_MIN_ATTEMPTS finished attempts say nothing about a rate: one failure of a daily task
    is the `failed` alert's news. `has_alert` False (the watchdog read the open ones at once)
    skips looking for an alert to resolve."""
    rate, finished = summary.success_rate, summary.finished
    if rate is not None and finished >= RATE_MIN_ATTEMPTS and rate < task.success_target:
        hours = f"{task.success_window / 3600:g} h"
        raise_alert(
            task,
            Kind.SUCCESS_RATE,
            f"{rate:.1f} % of {finished} attempts succeeded in the last {hours} "
            f"(target {task.success_target:g} %)",
        )
    elif has_alert:
        resolve_kinds(task, [Kind.SUCCESS_RATE], "success rate back on target")
    return rate


def raise_outage(
    hosts: list[str], first: datetime, last: datetime, tasks: list[str], attempts: int
) -> Alert:
    """One `outage` alert for the attempts a database outage sent to the spool, instead of one
    `failed` alert per task."""
    task = Task.objects.filter(name=OUTAGE_TASK).first()
    if task is None:
        from cronjobs.supervisor import registry, sync  # sync imports nothing from here

        spec = registry.registry.get(OUTAGE_TASK)
        task = sync.sync_task(spec) if spec else Task.objects.get(name=tasks[0])
    since, until = (timezone.localtime(t).strftime("%Y-%m-%d %H:%M:%S %Z") for t in (first, last))
    message = (
        f"database outage: {attempts} attempt(s) spooled on {', '.join(hosts)} between "
        f"{since} and {until}; tasks affected: {', '.join(tasks)}"
    )
    return raise_alert(task, Kind.OUTAGE, message)


def resolve_kinds(task: Task, kinds: list[str], why: str = "recovered") -> int:
    """Resolve the task's unresolved alerts of these kinds (a recovery)."""
    alerts = list(Alert.objects.unresolved().filter(task=task, kind__in=kinds))
    return sum(_resolve(alert, why) for alert in alerts)


def raise_run_alerts(task: Task, spec: TaskSpec, outcome: Outcome) -> None:
    """The policy after a run: raise `failed` once `alert_after` runs in a row failed (not
    for a stopped run, nor with `alert_on_failure` off), `slow` and `memory`; resolve them
    after a good run; check the success rate."""
    rows = [row for row in outcome.executions if row.status != Status.SKIPPED]
    succeeded = outcome.status == Status.SUCCEEDED
    last = rows[-1]
    if succeeded:
        resolve_kinds(task, [Kind.FAILED, Kind.LATE], "a run succeeded")
    elif spec.alert_on_failure and outcome.status != Status.CANCELLED:
        in_a_row = task.failed_runs_in_a_row(spec.alert_after) if spec.alert_after > 1 else 1
        if in_a_row >= spec.alert_after:
            runs = f" ({in_a_row} runs in a row)" if spec.alert_after > 1 else ""
            raise_alert(
                task,
                Kind.FAILED,
                f"run {outcome.run_id[:8]}: {len(rows)} attempt(s) failed{runs}; "
                f"last {last.status}: {last.error or 'no detail'}",
                execution=last,
            )
    slow = max((row.duration or 0 for row in rows), default=0)
    if slow > spec.effective_slow_after:
        raise_alert(
            task,
            Kind.SLOW,
            f"an attempt took {slow:.1f} s (slow after {spec.effective_slow_after:g} s)",
        )
    elif succeeded:
        resolve_kinds(task, [Kind.SLOW], "a run finished in time")
    check_success_rate(task)
    warn = spec.effective_memory_warn
    peak = max((row.peak_rss_bytes or 0 for row in rows), default=0)
    if warn and peak > warn:
        raise_alert(task, Kind.MEMORY, f"peak memory {peak} bytes over {warn} bytes")
    elif warn and succeeded:
        resolve_kinds(task, [Kind.MEMORY], "memory back under the warning level")


def resolve(alert: Alert, by: str = "") -> None:
    """Resolve by hand (admin action, API)."""
    _resolve(alert, f"resolved by {by}" if by else "resolved by hand")


def acknowledge(alert: Alert, user: User | None) -> None:
    """Someone is on it: keep it unresolved (so it still de-duplicates) but stop repeats."""
    Alert.objects.filter(pk=alert.pk, state=State.OPEN).update(
        state=State.ACKNOWLEDGED, acknowledged_by=user, acknowledged_at=timezone.now()
    )
    alert.refresh_from_db()


def _resolve(alert: Alert, why: str) -> bool:
    now = timezone.now()
    # Compare-and-set on open_key: exactly one resolver sends the "resolved" notification.
    done = (
        Alert.objects.unresolved()
        .filter(pk=alert.pk)
        .update(state=State.RESOLVED, resolved_at=now, open_key=None)
    )
    if done:
        alert.refresh_from_db()
        if not _silenced(alert, now):
            _send(alert, f"RESOLVED ({why})")
    return bool(done)


def _snoozed(task_id: int, now: datetime) -> bool:
    """Asked of the database, not of a Task loaded when the run started: a snooze set during a
    long run counts."""
    return Task.objects.filter(pk=task_id, snoozed_until__gt=now).exists()


def _silenced(alert: Alert, now: datetime) -> bool:
    """Snoozed, or in a `mute` maintenance window: recorded, not notified."""
    if _snoozed(alert.task_id, now):
        return True
    calendar = windows.Calendar(now)
    return calendar.covering(alert.task.name, now, mode=windows.Mode.MUTE) is not None


def end_windows(now: datetime | None = None, calendar: windows.Calendar | None = None) -> list[str]:
    """For every `mute` window whose latest occurrence is over and not yet closed, notify once
    each alert of its tasks that opened or recurred during it and is still open (the watchdog
    calls this each sweep; an operator ending a window calls `close_window`). Returns the
    labels of the windows closed."""
    calendar = calendar or windows.Calendar(now)
    closed = []
    for window in calendar.windows:
        if window.mode == windows.Mode.MUTE and close_window(window, calendar):
            closed.append(window.label)
    return closed


def close_window(window: MaintenanceWindow, calendar: windows.Calendar) -> bool:
    """Compare-and-set on `closed_through`, so of several watchdogs ending the same window
    exactly one sends the catch-up notifications. An occurrence that ended before the window
    was made (a recurring window just added) has nothing to send."""
    ended = calendar.last_ended(window)
    if ended is None or ended.end <= window.created_at:
        return False
    if window.closed_through is not None and ended.end <= window.closed_through:
        return False  # closed already
    claimed = MaintenanceWindow.objects.filter(pk=window.pk, closed_through=window.closed_through)
    if not claimed.update(closed_through=ended.end):
        return False
    window.closed_through = ended.end
    raised = Alert.objects.filter(state=State.OPEN, last_seen__gte=ended.start).filter(
        Q(notified_at__isnull=True) | Q(notified_at__lt=ended.start)
    )
    if window.tasks != MaintenanceWindow.ALL:
        raised = raised.filter(task__name__in=window.task_names)
    for alert in raised.select_related("task"):
        if _silenced(alert, calendar.now):
            continue  # still snoozed or in another mute window: that one's end notifies it
        if Alert.objects.filter(pk=alert.pk, notified_at=alert.notified_at).update(
            notified_at=calendar.now
        ):
            _send(alert, f"STILL OPEN after maintenance window {window.label}")
    return True


def snooze(tasks: QuerySet[Task], until: datetime) -> list[str]:
    """Snooze these tasks until `until`; returns their names."""
    names = sorted(tasks.values_list("name", flat=True))
    tasks.update(snoozed_until=until, updated_at=timezone.now())
    return names


def unsnooze(tasks: QuerySet[Task]) -> list[str]:
    """End the snooze of these tasks now; their open alerts are notified once. Returns the
    names of the tasks that were snoozed."""
    snoozed = tasks.filter(snoozed_until__isnull=False).order_by("name")
    return [task.name for task in snoozed if _end_snooze(task)]


def end_snoozes(now: datetime | None = None) -> list[str]:
    """End every snooze that has run out (the watchdog calls this each sweep)."""
    now = now or timezone.now()
    expired = Task.objects.filter(snoozed_until__lte=now)
    return [task.name for task in expired if _end_snooze(task)]


def _end_snooze(task: Task) -> bool:
    """Compare-and-set on snoozed_until, so of several hosts ending the same snooze exactly one
    sends the catch-up notifications."""
    if not Task.objects.filter(pk=task.pk, snoozed_until=task.snoozed_until).update(
        snoozed_until=None
    ):
        return False
    task.snoozed_until = None
    now = timezone.now()
    for alert in Alert.objects.filter(task=task, state=State.OPEN).select_related("task"):
        if Alert.objects.filter(pk=alert.pk, notified_at=alert.notified_at).update(notified_at=now):
            _send(alert, "STILL OPEN after snooze")
    return True


def _notify_if_due(alert: Alert, now: datetime) -> None:
    """Claim the notification with a compare-and-set on notified_at, so several hosts raising
    the same alert send it once."""
    if alert.state != State.OPEN:
        return  # acknowledged: a person is on it
    if _silenced(alert, now):
        return  # recorded and visible; notified when the snooze or window ends if still open
    repeat = timedelta(hours=settings.ALERT_REPEAT_HOURS)
    due = Q(notified_at__isnull=True) | Q(notified_at__lte=now - repeat)
    if Alert.objects.filter(due, pk=alert.pk, notified_at=alert.notified_at).update(
        notified_at=now
    ):
        label = "OPEN" if alert.occurrences == 1 else f"STILL OPEN ({alert.occurrences} times)"
        _send(alert, label)


def _send(alert: Alert, label: str) -> None:
    """Tell every receiver; a receiver that fails is logged by notify.guarded, never raised."""
    notify.send_to_all(message(alert, label))


def message(alert: Alert, label: str) -> notify.Message:
    """What happened, to which task, on which host, and where to look."""
    task = alert.task
    title = f"[flagged-cron] {label}: {alert.kind} alert for {task.name}"
    link = admin_link(alert)
    body = (
        f"Task:        {task.name}\n"
        f"Alert:       {alert.kind} ({alert.severity}), {label}\n"
        f"Message:     {alert.message}\n"
        f"Host:        {settings.CRONJOBS_HOST}\n"
        f"First seen:  {timezone.localtime(alert.first_seen):%Y-%m-%d %H:%M:%S %Z}\n"
        f"Last seen:   {timezone.localtime(alert.last_seen):%Y-%m-%d %H:%M:%S %Z}\n"
        f"Occurrences: {alert.occurrences}\n" + (f"Details:     {link}\n" if link else "")
    )
    payload = {
        "text": f"{title}\n{alert.message}",  # what a Slack incoming webhook shows
        "task": task.name,
        "kind": alert.kind,
        "severity": alert.severity,
        "state": alert.state,
        "event": label.split(" ")[0].lower(),
        "message": alert.message,
        "host": settings.CRONJOBS_HOST,
        "occurrences": alert.occurrences,
        "first_seen": alert.first_seen.isoformat(),
        "last_seen": alert.last_seen.isoformat(),
        "alert_id": alert.pk,
        "url": link,
    }
    return notify.Message(title, body, payload)


def admin_link(alert: Alert) -> str:
    """The attempt that raised the alert in the admin, or the alert itself; "" without
    CRONJOBS_BASE_URL (a message cannot know which address operators use)."""
    base = settings.CRONJOBS_BASE_URL.rstrip("/")
    if not base:
        return ""
    execution = getattr(alert, "execution_pk", None)
    if execution:
        return base + reverse("admin:cronjobs_execution_change", args=[execution])
    return base + reverse("admin:cronjobs_alert_change", args=[alert.pk])
