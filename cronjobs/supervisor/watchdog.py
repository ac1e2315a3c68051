"""The watchdog (docs/operations.md, "Watchdog and pruning"): `late` alerts for tasks that missed
their schedule, one catch-up run for a `catch_up` task whose latest slot passed unrun, and
abandonment of runs whose supervisor died without anyone invoking the task again. A slot that
fell in a `skip` maintenance window was skipped on purpose: it is neither late nor caught up;
the end of a `mute` window sends the alerts it held back (cronjobs/windows.py); and the
alerts' reminders, escalations and end of flapping (docs/operations.md, "Alerting")."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol, TypedDict

from django.conf import settings
from django.db.models import Max, QuerySet
from django.utils import timezone

from cronjobs import schedules, windows
from cronjobs.models import Alert, CircuitState, Execution, Task
from cronjobs.reporting import stats
from cronjobs.supervisor import alerts, dispatch, lease, logs, pings, runner, slots

SKIP = windows.Mode.SKIP


class LateReport(TypedDict):
    late: list[str]  # task names
    on_time: list[str]


class SweepReport(LateReport):
    abandoned_runs: int
    caught_up: list[str]
    taken_over: list[str]  # slots a dead dispatcher claimed and never started
    reminders: alerts.Reminders
    calmed: list[str]  # tasks whose `flapping` alert resolved


def grace_for(task: Task) -> timedelta:
    """How long after its scheduled time a task may still succeed: every attempt may run to
    its timeout, with the retry delays between, plus CRONJOBS_LATE_GRACE for cron's own lag."""
    attempts = task.max_attempts * task.timeout + (task.max_attempts - 1) * task.retry_delay
    return timedelta(seconds=attempts + settings.CRONJOBS_LATE_GRACE)


def due_times(tasks: list[Task], now: datetime) -> dict[int, datetime]:
    """The latest scheduled time of each task whose grace has run out by `now`."""
    due = {}
    previous_run = _previous_runs()
    for task in tasks:
        previous = previous_run(task.schedule, now - grace_for(task), task.time_zone)
        # A task created after that time was never expected to have run.
        if previous is not None and previous >= task.created_at:
            due[task.pk] = previous
    return due


def _previous_runs() -> Callable[[str, datetime, str], datetime | None]:
    """schedules.previous_run, each (schedule, moment, zone) worked out once per pass: tasks
    share a few schedules, and croniter costs about a millisecond a call."""
    known: dict[tuple[str, datetime, str], datetime | None] = {}

    def previous_run(schedule: str, before: datetime, zone: str) -> datetime | None:
        if (schedule, before, zone) not in known:
            known[schedule, before, zone] = schedules.previous_run(schedule, before, zone)
        return known[schedule, before, zone]

    return previous_run


def check_late(now: datetime | None = None, tasks: list[Task] | None = None) -> LateReport:
    """Raise `late` for tasks with no success since their due time, unless a `skip` window
    covered that time; resolve it for the rest. `tasks` are the current tasks when the caller
    read them already. Two queries (last successes, open late alerts) however many tasks, a
    third (maintenance windows) when a slot was missed, plus one per change."""
    now = now or timezone.now()
    tasks = list(_current_tasks()) if tasks is None else tasks
    due = due_times(tasks, now)
    last_success = (
        {}
        if not due
        else dict(
            Execution.objects.filter(
                status=Execution.Status.SUCCEEDED,
                # A subquery, not the list of 10,000 due ids, which Django takes longer to build
                # into SQL than the database takes to run it; other tasks' rows are ignored.
                task_id__in=_current_tasks().select_related(None).values("id"),
                started_at__gte=min(due.values(), default=now),
            )
            .values_list("task_id")
            .annotate(last=Max("started_at"))
        )
    )
    # Tasks on time with nothing to resolve (nearly all, nearly always) cost no query.
    open_late = set(
        Alert.objects.unresolved().filter(kind=alerts.Kind.LATE).values_list("task_id", flat=True)
    )
    # A success that started at the scheduled second is that run, on time.
    missed = {
        pk: expected
        for pk, expected in due.items()
        if pk not in last_success or last_success[pk] < expected
    }
    # Only a missed slot asks the windows (one query): was it skipped on purpose?
    calendar = windows.Calendar(now, since=min(missed.values(), default=now)) if missed else None
    report: LateReport = {"late": [], "on_time": []}
    for task in tasks:
        if task.is_snoozed(now):
            continue  # a deploy or maintenance window: late is expected, not news
        expected = missed.get(task.pk)
        if calendar and expected and calendar.covering(task.name, expected, mode=SKIP):
            continue  # that slot was skipped on purpose
        if expected is not None:
            when = timezone.localtime(expected).strftime("%Y-%m-%d %H:%M %Z")
            alerts.raise_alert(task, alerts.Kind.LATE, f"no successful run since the {when} run")
            report["late"].append(task.name)
        else:
            if task.pk in open_late:
                alerts.resolve_kinds(task, [alerts.Kind.LATE], "ran on schedule")
            report["on_time"].append(task.name)
    return report


def missed_slots(tasks: list[Task], now: datetime) -> dict[int, datetime]:
    """Per `catch_up` task that may run now (enabled, current, not snoozed, circuit not open),
    its latest scheduled slot when that slot passed more than CRONJOBS_LATE_GRACE ago with no
    run started since, was not caught up already and did not fall in a `skip` maintenance
    window. Older slots are never returned: after a long outage one run catches up, not one per
    slot. One query (runs started), and one more (windows) when a slot was missed, however many
    tasks."""
    grace = timedelta(seconds=settings.CRONJOBS_LATE_GRACE)
    slots = {}
    previous_run = _previous_runs()
    for task in tasks:
        if not _may_catch_up(task, now):
            continue
        slot = previous_run(task.schedule, now, task.time_zone)
        if slot is None or slot < task.created_at or slot > now - grace:
            continue
        if task.claimed_slot is None or task.claimed_slot < slot:  # cron or catch-up has it
            slots[task.pk] = slot
    if not slots:
        return {}
    started = dict(
        Execution.objects.filter(task_id__in=list(slots), started_at__gte=min(slots.values()))
        .values_list("task_id")
        .annotate(last=Max("started_at"))
    )
    # Cron starts a run at its slot's very second; anything from then on ran for the slot.
    missed = {pk: slot for pk, slot in slots.items() if pk not in started or started[pk] < slot}
    if not missed:
        return {}
    # A slot in a `skip` window was skipped on purpose: not caught up afterwards.
    calendar = windows.Calendar(now, since=min(missed.values()))
    names = {task.pk: task.name for task in tasks}
    return {
        pk: slot for pk, slot in missed.items() if not calendar.covering(names[pk], slot, mode=SKIP)
    }


def _may_catch_up(task: Task, now: datetime) -> bool:
    return (
        task.catch_up
        and task.enabled
        and not task.is_retired
        and bool(task.schedule)
        and not task.is_snoozed(now)
        and task.circuit_state != CircuitState.State.OPEN
    )


class Starter(Protocol):
    def __call__(self, task_name: str, trigger: str, *, slot: datetime) -> object: ...


def catch_up(
    now: datetime | None = None, start: Starter | None = None, tasks: list[Task] | None = None
) -> list[str]:
    """Start one detached run (trigger `catch_up`, `--slot` the missed slot) per missed slot;
    returns the task names. Each slot is claimed first with the compare-and-set a cron call
    uses (Task.claimed_slot, cronjobs/supervisor/slots.py), so two watchdogs on two hosts, a
    second pass, or a cron call late for that slot never start a second run for it."""
    now = now or timezone.now()
    start = start or runner.start_in_background
    if tasks is None:
        tasks = list(_current_tasks().filter(catch_up=True))
    by_pk = {task.pk: task for task in tasks}
    started = []
    for pk, slot in missed_slots(tasks, now).items():
        task = by_pk[pk]
        if not slots.claim(task, slot, caught_up_slot=slot):
            continue  # another watchdog, or a late cron call, took this slot
        when = timezone.localtime(slot).strftime("%Y-%m-%d %H:%M %Z")
        logs.write("WARNING", task.name, f"missed the {when} run: starting a catch-up run")
        start(task.name, Execution.Trigger.CATCH_UP, slot=slot)
        started.append(task.name)
    return started


def start_orphans(start: Callable[..., object] | None = None) -> list[str]:
    """Start the slots a dispatcher claimed and died before starting (cronjobs/supervisor/
    dispatch.py): each as `runjob <task> --slot --claim`, which runs it, or records it skipped
    when it is past its start deadline. Returns the task names."""
    start = start or runner.start_in_background
    token = slots.Token.DISPATCH.make()
    orphans = dispatch.take_over_orphans(token)
    for item in orphans:
        start(item.spec.name, Execution.Trigger.CRON, slot=item.slot, claim=token)
    return [item.spec.name for item in orphans]


def _enabled_tasks() -> QuerySet[Task]:
    return Task.objects.filter(enabled=True, retired_at__isnull=True).select_related("circuitstate")


def _current_tasks() -> QuerySet[Task]:
    return _enabled_tasks().exclude(schedule="")


def check_success_rates(now: datetime | None = None, tasks: list[Task] | None = None) -> None:
    """`success_rate` for every enabled task, so a rate that recovers as failures age out of
    the window resolves its alert even when the task does not run. `tasks` are the enabled,
    unretired tasks when the caller read them already. One window query for all the tasks
    that share a `success_window`, and one for the open `success_rate` alerts, not one per
    task."""
    now = now or timezone.now()
    tasks = list(_enabled_tasks()) if tasks is None else tasks
    kind = alerts.Kind.SUCCESS_RATE
    open_alerts = set(
        Alert.objects.unresolved().filter(kind=kind).values_list("task_id", flat=True)
    )
    by_window: dict[int, list[Task]] = defaultdict(list)
    for task in tasks:
        by_window[task.success_window].append(task)
    for window, sharing in by_window.items():
        since = now - timedelta(seconds=window)
        # Nearly always every task shares the default window: a list of 10,000 ids would cost
        # more to build into SQL than reading the few other tasks' figures and ignoring them.
        ids = None if len(by_window) == 1 else [task.pk for task in sharing]
        summaries = stats.task_summaries(since, now, with_p95=False, task_ids=ids)
        for task in sharing:
            summary = summaries.get(task.pk) or stats.TaskSummary(task.pk)
            alerts.judge_success_rate(task, summary, open_alert=task.pk in open_alerts)


def sweep() -> SweepReport:
    """One watchdog pass. CRONJOBS_WATCHDOG_PING_URL hears of each: its base URL when the pass
    worked, `/fail` when it did not (the database is gone), nothing when cron stopped."""
    pinger = pings.Pinger(settings.CRONJOBS_WATCHDOG_PING_URL, pings.new_rid())
    try:
        alerts.end_snoozes()
        alerts.end_windows()
        abandoned = lease.reap_expired()
        # One read of the Task table for the whole pass: with 10,000 tasks each read of every
        # row costs about a quarter of a second.
        enabled = list(_enabled_tasks())
        current = [task for task in enabled if task.schedule]
        report: SweepReport = {
            "abandoned_runs": abandoned,
            "caught_up": catch_up(tasks=[task for task in current if task.catch_up]),
            "taken_over": start_orphans(),
            **check_late(tasks=current),
            "reminders": alerts.send_reminders(),
            "calmed": alerts.calm_flapping(),
        }
        check_success_rates(tasks=enabled)
    except Exception as exc:
        pinger.fail(f"watchdog on {settings.CRONJOBS_HOST} failed: {type(exc).__name__}: {exc}")
        raise
    pinger.success()
    return report
