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

Cutting the noise (docs/operations.md, "Alerting"):

* recovery: only an alert that was notified sends its "resolved" message;
* reminders: the watchdog (`send_reminders`) re-notifies every notified, unacknowledged
  critical alert each ALERT_REPEAT_EVERY seconds, and sends it once to ALERT_ESCALATION_URLS
  when it stayed unacknowledged ALERT_ESCALATE_AFTER seconds; each send is claimed by a
  compare-and-set (notified_at, escalated_at), so several watchdogs send it once;
* one page per incident: a `late` or `failed` alert raised while an `outage` alert is open, or
  while a task upstream of it (its `after`, followed up the chain) has an open `failed` or
  `circuit_open` alert, points at that incident (`Alert.incident`) and is not notified on its
  own; the incident's later notices list it, and when the incident resolves the folded alerts
  still open are notified once;
* flapping: a task with one kind of alert that opened or resolved more than FLAP_CHANGES
  times in the last hour gets one `flapping` alert instead of a notice per change; it
  resolves after an hour with no change, and the task's alerts then still open are notified
  once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypedDict

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from cronjobs import windows
from cronjobs.models import Alert, DurationBaseline, Execution, MaintenanceWindow, Task
from cronjobs.reporting import stats
from cronjobs.supervisor import durations, notify
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
    Kind.TOO_SHORT: Alert.Severity.CRITICAL,  # a job that "succeeds" at once did nothing
    Kind.TOO_LONG: Alert.Severity.WARNING,  # like `slow`: it did finish
    Kind.FLAPPING: Alert.Severity.WARNING,
}
# Raised while an incident is open, these point at it instead of paging on their own.
FOLDABLE = (Kind.LATE, Kind.FAILED)
# An open alert of one of these kinds on an upstream task is an incident for its dependants.
UPSTREAM_INCIDENTS = (Kind.FAILED, Kind.CIRCUIT_OPEN)
# Flapping: more than FLAP_CHANGES opens and resolves of one kind of a task's alerts within
# FLAP_WINDOW.
FLAP_CHANGES = 4
FLAP_WINDOW = timedelta(hours=1)
OUTAGE_TASK = "watchdog"  # an outage is no one task's: it is filed under the supervisor's own


RATE_MIN_ATTEMPTS = 5


def _key(task: Task, kind: str) -> str:
    return f"{task.pk}:{kind}"


def raise_alert(task: Task, kind: str, message: str, execution: Execution | None = None) -> Alert:
    """Open an alert, or count one more occurrence of the unresolved one; notify if due.
    `execution` is the attempt the notification links to."""
    now = timezone.now()
    incident = incident_for(task) if kind in FOLDABLE else None
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
                    incident=incident,
                )
        except IntegrityError:  # another process opened it a moment ago
            alert = _bump(task, kind, message, now)
    if alert is None:  # opened and resolved by others in the meantime: open a fresh one
        return raise_alert(task, kind, message, execution)
    if incident and alert.incident_id is None and alert.notified_at is None:
        # Opened earlier but never notified (snoozed, flapping): fold it now.
        Alert.objects.filter(pk=alert.pk, incident__isnull=True).update(incident=incident)
        alert.incident = incident
    alert.execution_pk = execution.pk if execution else None  # type: ignore[attr-defined]
    _notify_if_due(alert, now)
    return alert


def incident_for(task: Task) -> Alert | None:
    """The open incident a `late` or `failed` alert of `task` belongs to: an unresolved
    `outage`, else the oldest unresolved `failed` or `circuit_open` alert of a task upstream of
    it (its `after` tasks, theirs, and so on). Two queries at most; one for a task not in a
    chain."""
    outage = Alert.objects.unresolved().filter(kind=Kind.OUTAGE).order_by("first_seen").first()
    if outage is not None:
        return outage
    if not task.after:
        return None
    upstream_of = dict(Task.objects.exclude(after="").values_list("name", "after"))
    upstream_of[task.name] = task.after
    ancestors: set[str] = set()
    todo = [task.name]
    while todo:
        for name in upstream_of.get(todo.pop(), "").split(","):
            if name and name not in ancestors and name != task.name:
                ancestors.add(name)
                todo.append(name)
    return (
        Alert.objects.unresolved()
        .filter(task__name__in=ancestors, kind__in=UPSTREAM_INCIDENTS)
        .order_by("first_seen")
        .first()
    )


def _bump(task: Task, kind: str, message: str, now: datetime) -> Alert | None:
    key = _key(task, kind)
    updated = Alert.objects.filter(open_key=key).update(
        occurrences=F("occurrences") + 1, last_seen=now, message=message
    )
    return Alert.objects.filter(open_key=key).first() if updated else None


def check_success_rate(
    task: Task, now: datetime | None = None, open_alert: bool = True
) -> float | None:
    """Raise `success_rate` while the task's rate over its window is under its target; resolve
    it once the rate is back (after each run; the watchdog judges every task at once with
    `judge_success_rate`). The rate is the one the pages show for the same window
    (reporting.stats), a percent like the target. Returns the rate."""
    now = now or timezone.now()
    since = now - timedelta(seconds=task.success_window)
    summaries = stats.task_summaries(since, now, with_p95=False, task_ids=[task.pk])
    summary = summaries.get(task.pk) or stats.TaskSummary(task.pk)
    return judge_success_rate(task, summary, open_alert)


def judge_success_rate(
    task: Task, summary: stats.TaskSummary, open_alert: bool = True
) -> float | None:
    """The `success_rate` alert from the task's summary over its `success_window`. Fewer than
    RATE_MIN_ATTEMPTS finished attempts say nothing about a rate: one failure of a daily task
    is the `failed` alert's news. `open_alert=False` (the caller knows the task has no open
    `success_rate` alert) saves the query that would look for one to resolve."""
    rate, finished = summary.success_rate, summary.finished
    if rate is not None and finished >= RATE_MIN_ATTEMPTS and rate < task.success_target:
        hours = f"{task.success_window / 3600:g} h"
        raise_alert(
            task,
            Kind.SUCCESS_RATE,
            f"{rate:.1f} % of {finished} attempts succeeded in the last {hours} "
            f"(target {task.success_target:g} %)",
        )
    elif open_alert:
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
    after a good run; check the success rate.

    The task's open alert kinds are read once: a good run of a quiet task (most runs of a
    burst) then looks for nothing to resolve, kind by kind."""
    rows = [row for row in outcome.executions if row.status != Status.SKIPPED]
    succeeded = outcome.status == Status.SUCCEEDED
    last = rows[-1]
    open_kinds = set(Alert.objects.unresolved().filter(task=task).values_list("kind", flat=True))

    def resolve(kinds: list[str], why: str) -> None:
        if open_kinds.intersection(kinds):
            resolve_kinds(task, kinds, why)

    if succeeded:
        resolve([Kind.FAILED, Kind.LATE], "a run succeeded")
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
        resolve([Kind.SLOW], "a run finished in time")
    if succeeded and spec.duration_alerts == "auto":
        judge_duration(task, spec, rows)
    check_success_rate(task, open_alert=Kind.SUCCESS_RATE in open_kinds)
    warn = spec.effective_memory_warn
    peak = max((row.peak_rss_bytes or 0 for row in rows), default=0)
    if warn and peak > warn:
        raise_alert(task, Kind.MEMORY, f"peak memory {peak} bytes over {warn} bytes")
    elif warn and succeeded:
        resolve([Kind.MEMORY], "memory back under the warning level")


def judge_duration(task: Task, spec: TaskSpec, rows: list[Execution]) -> str | None:
    """Raise `too_short` or `too_long` when the run's successful attempt is far outside the
    task's baseline (cronjobs/supervisor/durations.py), resolve both when it is inside. The
    baseline leaves this run's attempts out. Returns the verdict ("" inside, None: no baseline
    yet)."""
    success = rows[-1]
    if success.duration is None:
        return None
    anomalies: list[str] = [Kind.TOO_SHORT, Kind.TOO_LONG]
    # One query: the samples, and whether an anomaly alert is open to resolve.
    found = (
        DurationBaseline.objects.filter(task=task)
        .annotate(open=Exists(Alert.objects.unresolved().filter(task=task, kind__in=anomalies)))
        .values_list("samples", "open")
        .first()
    )
    samples, has_open = found or ([], False)
    base = durations.baseline(samples, spec.duration_baseline, {row.pk for row in rows if row.pk})
    if base is None:
        return None
    verdict = base.verdict(success.duration)
    if verdict is None:
        if has_open:
            resolve_kinds(task, anomalies, "a run took its usual time")
        return ""
    other = Kind.TOO_LONG if verdict == Kind.TOO_SHORT else Kind.TOO_SHORT
    resolve_kinds(task, [other], "a run took its usual time")
    raise_alert(task, verdict, base.describe(success.duration), execution=success)
    return verdict


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
        # Only what was notified has a recovery to announce; a flapping task's changes are
        # summed up by its `flapping` alert instead.
        if alert.notified_at and not _silenced(alert, now) and not _flapping(alert, now):
            note = message(alert, f"RESOLVED ({why})")
            notify.send_to_all(note)
            if alert.escalated_at:
                notify.send_to_escalation(note)
        _release_folded(alert, now)
        if alert.kind == Kind.FLAPPING:
            _notify_unnotified(alert.task, now, "STILL OPEN after flapping")
    return bool(done)


def _release_folded(incident: Alert, now: datetime) -> None:
    """The incident is over: the alerts folded into it that are still open are their own news
    now, each notified once."""
    for alert in Alert.objects.filter(incident=incident, state=State.OPEN).select_related("task"):
        _notify_if_due(alert, now)


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
        if _folded(alert):
            continue  # the incident's notices carry it
        if Alert.objects.filter(pk=alert.pk, notified_at=alert.notified_at).update(notified_at=now):
            _send(alert, "STILL OPEN after snooze")
    return True


def _notify_unnotified(task: Task, now: datetime, label: str) -> None:
    """Each open alert of the task that nobody heard of yet, once (compare-and-set)."""
    for alert in Alert.objects.filter(task=task, state=State.OPEN, notified_at__isnull=True):
        if alert.kind == Kind.FLAPPING or _folded(alert) or _snoozed(task.pk, now):
            continue
        if Alert.objects.filter(pk=alert.pk, notified_at__isnull=True).update(notified_at=now):
            _send(alert, label)


def _folded(alert: Alert) -> bool:
    """Folded into an incident that is still unresolved."""
    if alert.incident_id is None:
        return False
    return Alert.objects.unresolved().filter(pk=alert.incident_id).exists()


def _flapping(alert: Alert, now: datetime) -> bool:
    """Whether this change of the alert's task is one change too many: true while the task
    has an unresolved `flapping` alert, and when this change makes more than FLAP_CHANGES in
    FLAP_WINDOW (which opens that alert and sends its one notice)."""
    if alert.kind == Kind.FLAPPING:
        return False
    task = alert.task
    if Alert.objects.unresolved().filter(task=task, kind=Kind.FLAPPING).exists():
        return True
    changes = _changes(task.pk, now)
    if changes <= FLAP_CHANGES:
        return False
    raise_alert(
        task,
        Kind.FLAPPING,
        f"an alert opened or resolved {changes} times in the last hour (more than "
        f"{FLAP_CHANGES}): notices of each change are held until an hour passes without one",
    )
    return True


def _changes(task_id: int, now: datetime) -> int:
    """The most opens plus resolves of one kind of the task's alerts in the FLAP_WINDOW before
    `now` (one query). Per kind: one bad run that opens `failed`, `slow` and `success_rate` at
    once, and the good run that resolves them, is not flapping."""
    since = now - FLAP_WINDOW
    counts = (
        Alert.objects.filter(task_id=task_id)
        .exclude(kind=Kind.FLAPPING)
        .filter(Q(first_seen__gte=since) | Q(resolved_at__gte=since))
        .values("kind")
        .annotate(
            opened=Count("id", filter=Q(first_seen__gte=since)),
            resolved=Count("id", filter=Q(resolved_at__gte=since)),
        )
        .order_by()
    )
    return max((row["opened"] + row["resolved"] for row in counts), default=0)


def calm_flapping(now: datetime | None = None) -> list[str]:
    """Resolve the `flapping` alerts of tasks whose alerts did not change for FLAP_WINDOW (the
    watchdog calls this each pass); returns the task names. One query, plus two per
    flapping task."""
    now = now or timezone.now()
    calmed = []
    for alert in Alert.objects.unresolved().filter(kind=Kind.FLAPPING).select_related("task"):
        if _changes(alert.task_id, now) == 0 and _resolve(alert, "calm for an hour"):
            calmed.append(alert.task.name)
    return calmed


class Reminders(TypedDict):
    """What a pass sent: alert ids."""

    repeated: list[int]
    escalated: list[int]


def send_reminders(now: datetime | None = None) -> Reminders:
    """Re-notify each notified, unacknowledged critical alert every ALERT_REPEAT_EVERY
    seconds, and send each one that stayed unacknowledged ALERT_ESCALATE_AFTER seconds once to
    ALERT_ESCALATION_URLS. Snoozed tasks, tasks in a `mute` maintenance window and alerts
    folded into an open incident are left out. Every send is claimed by a compare-and-set
    (notified_at, escalated_at), so of several watchdogs exactly one sends it. Two queries, a
    third for the windows when something is due, plus one per send, however many tasks."""
    now = now or timezone.now()
    sent = Reminders(repeated=[], escalated=[])
    calendars: list[windows.Calendar] = []

    def muted(alert: Alert) -> bool:
        if not calendars:  # read the windows once, and only when an alert is due
            calendars.append(windows.Calendar(now))
        return calendars[0].covering(alert.task.name, now, mode=windows.Mode.MUTE) is not None

    due = (
        Alert.objects.filter(
            state=State.OPEN, severity=Alert.Severity.CRITICAL, notified_at__isnull=False
        )
        .exclude(incident__open_key__isnull=False)
        .exclude(task__snoozed_until__gt=now)
        .select_related("task")
    )
    every = settings.ALERT_REPEAT_EVERY
    if every:
        for alert in due.filter(notified_at__lte=now - timedelta(seconds=every)):
            if muted(alert):
                continue
            claimed = Alert.objects.filter(
                pk=alert.pk, state=State.OPEN, notified_at=alert.notified_at
            ).update(notified_at=now, repeats=F("repeats") + 1)
            if claimed:
                alert.repeats += 1
                _send(alert, f"REPEAT {alert.repeats}, unacknowledged")
                sent["repeated"].append(alert.pk)
    after = settings.ALERT_ESCALATE_AFTER
    if after and settings.ALERT_ESCALATION_URLS:
        late = due.filter(escalated_at__isnull=True, first_seen__lte=now - timedelta(seconds=after))
        for alert in late:
            if muted(alert):
                continue
            claimed = Alert.objects.filter(
                pk=alert.pk, state=State.OPEN, escalated_at__isnull=True
            ).update(escalated_at=now)
            if claimed:
                alert.escalated_at = now
                notify.send_to_escalation(message(alert, f"ESCALATED, unacknowledged {after} s"))
                sent["escalated"].append(alert.pk)
    return sent


def _notify_if_due(alert: Alert, now: datetime) -> None:
    """Claim the notification with a compare-and-set on notified_at, so several hosts raising
    the same alert send it once."""
    if alert.state != State.OPEN:
        return  # acknowledged: a person is on it
    if _silenced(alert, now):
        return  # recorded and visible; notified when the snooze or window ends if still open
    if _folded(alert):
        return  # one page per incident: the incident's notices list it
    if alert.notified_at is None and _flapping(alert, now):
        return  # summed up by the task's one `flapping` notice
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
    folded = [a.summary for a in alert.folded.select_related("task").order_by("first_seen")]
    body = (
        f"Task:        {task.name}\n"
        f"Alert:       {alert.kind} ({alert.severity}), {label}\n"
        f"State:       {alert.state}\n"
        f"Message:     {alert.message}\n"
        f"Host:        {settings.CRONJOBS_HOST}\n"
        f"First seen:  {timezone.localtime(alert.first_seen):%Y-%m-%d %H:%M:%S %Z}\n"
        f"Last seen:   {timezone.localtime(alert.last_seen):%Y-%m-%d %H:%M:%S %Z}\n"
        f"Occurrences: {alert.occurrences}\n"
        + (f"Reminders:   {alert.repeats}\n" if alert.repeats else "")
        + (f"Incident:    {alert.incident.summary}\n" if alert.incident else "")
        + (f"Folded:      {'; '.join(folded)}\n" if folded else "")
        + (f"Details:     {link}\n" if link else "")
    )
    payload = {
        "text": f"{title}\n{alert.message}",  # what a Slack incoming webhook shows
        "task": task.name,
        "kind": alert.kind,
        "severity": alert.severity,
        "state": alert.state,
        "event": label.split()[0].strip(",").lower(),
        "message": alert.message,
        "host": settings.CRONJOBS_HOST,
        "occurrences": alert.occurrences,
        "first_seen": alert.first_seen.isoformat(),
        "last_seen": alert.last_seen.isoformat(),
        "alert_id": alert.pk,
        "url": link,
        "repeats": alert.repeats,
        "incident_id": alert.incident_id,
        "folded": folded,
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
