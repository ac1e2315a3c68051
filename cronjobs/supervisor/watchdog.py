"""The watchdog (docs/operations.md, "Watchdog and pruning"): `late` alerts for tasks that missed
their schedule, and abandonment of runs whose supervisor died without anyone invoking the task
again."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypedDict

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from cronjobs import schedules
from cronjobs.models import Execution, Task
from cronjobs.reporting import rollups
from cronjobs.supervisor import alerts, lease, pings


class LateReport(TypedDict):
    late: list[str]  # task names
    on_time: list[str]


class SweepReport(LateReport):
    abandoned_runs: int


def grace_for(task: Task) -> timedelta:
    """How long after its scheduled time a task may still succeed: every attempt may run to
    its timeout, with the retry delays between, plus CRONJOBS_LATE_GRACE for cron's own lag."""
    attempts = task.max_attempts * task.timeout + (task.max_attempts - 1) * task.retry_delay
    return timedelta(seconds=attempts + settings.CRONJOBS_LATE_GRACE)


def due_times(tasks: list[Task], now: datetime) -> dict[int, datetime]:
    """The latest scheduled time of each task whose grace has run out by `now`."""
    due = {}
    for task in tasks:
        previous = schedules.previous_run(task.schedule, before=now - grace_for(task))
        # A task created after that time was never expected to have run.
        if previous is not None and previous >= task.created_at:
            due[task.pk] = previous
    return due


def check_late(now: datetime | None = None) -> LateReport:
    """Raise `late` for tasks with no success since their due time; resolve it for the rest.
    One query for the last successes, however many tasks."""
    now = now or timezone.now()
    tasks = list(Task.objects.filter(enabled=True, retired_at__isnull=True).exclude(schedule=""))
    due = due_times(tasks, now)
    last_success = dict(
        Execution.objects.filter(
            status=Execution.Status.SUCCEEDED,
            task_id__in=list(due),
            started_at__gte=min(due.values(), default=now),
        )
        .values_list("task_id")
        .annotate(last=Max("started_at"))
    )
    report: LateReport = {"late": [], "on_time": []}
    for task in tasks:
        if task.is_snoozed(now):
            continue  # a deploy or maintenance window: late is expected, not news
        expected = due.get(task.pk)
        if expected is not None and last_success.get(task.pk, expected) <= expected:
            when = timezone.localtime(expected).strftime("%Y-%m-%d %H:%M %Z")
            alerts.raise_alert(task, alerts.Kind.LATE, f"no successful run since the {when} run")
            report["late"].append(task.name)
        else:
            alerts.resolve_kinds(task, [alerts.Kind.LATE], "ran on schedule")
            report["on_time"].append(task.name)
    return report


def check_success_rates(now: datetime | None = None) -> None:
    """`success_rate` for every current task, so a rate that recovers as failures age out of
    the window resolves its alert even when the task does not run."""
    for task in Task.objects.filter(enabled=True, retired_at__isnull=True):
        alerts.check_success_rate(task, now)


def sweep() -> SweepReport:
    """One watchdog pass. CRONJOBS_WATCHDOG_PING_URL hears of each: its base URL when the pass
    worked, `/fail` when it did not (the database is gone), nothing when cron stopped."""
    pinger = pings.Pinger(settings.CRONJOBS_WATCHDOG_PING_URL, pings.new_rid())
    try:
        alerts.end_snoozes()
        report: SweepReport = {"abandoned_runs": lease.reap_expired(), **check_late()}
        check_success_rates()
        # Recompute the dashboard's closed days here when their cache entries expire, so no
        # page view has to (on a million rows that costs the better part of a second).
        rollups.daily(30)
    except Exception as exc:
        pinger.fail(f"watchdog on {settings.CRONJOBS_HOST} failed: {type(exc).__name__}: {exc}")
        raise
    pinger.success()
    return report
