"""Past executions for the demo (`manage.py seed_history`), so a fresh `make demo` shows days
of history on the dashboard instead of one run per task.

For every active task of the demo's own (the built-in tasks and the Flagged Products jobs,
declared in `cronjobs.jobs` and `flagged_products.jobs`; never a task you declared) it follows
the task's own schedule back `days` days: mostly successes,
some failed first attempts that a retry fixed, a few runs that failed every attempt, an
overlap skip now and then, one timed-out attempt, and one task whose circuit is open now
(five failed attempts within the last hour, an open CircuitState, open `circuit_open` and
`failed` alerts). Deterministic for a given seed; rows are bulk inserted and marked with the
host `demo-history`, so seeding again replaces them instead of adding more.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Sequence

from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from cronjobs import history, schedules
from cronjobs.models import Alert, CircuitState, Execution, Task
from cronjobs.supervisor import alerts

HOST = "demo-history"
MARK = " [demo history]"
BATCH = 1000
MANUAL_RUNS_PER_DAY = 2  # for tasks without a schedule
# Whose history is invented: tasks declared in these modules (Task.target "module:function").
DEMO_MODULES = ("cronjobs.jobs", "flagged_products.jobs")
# What each demo task's failures say: errors that task could really meet.
ERRORS = {
    "generate_daily_products": (
        "IntegrityError: duplicate entry for key 'flag_outlet_product_date'",
        "OperationalError: (2006, 'MySQL server has gone away')",
    ),
    "refresh_store_stats": (
        "OperationalError: (1205, 'Lock wait timeout exceeded; try restarting transaction')",
        "OperationalError: (2006, 'MySQL server has gone away')",
    ),
    "refresh_leaderboard": ("OperationalError: (1213, 'Deadlock found when trying to get lock')",),
    "check_achievements": (
        "OperationalError: (1205, 'Lock wait timeout exceeded; try restarting transaction')",
    ),
    "generate_ai_insights": (
        "RateLimitError: 429 Too Many Requests",
        "APITimeoutError: the insights endpoint did not answer within 60 s",
    ),
    "heartbeat": ("OperationalError: (2013, 'Lost connection to MySQL server during query')",),
    "watchdog": ("OperationalError: (2013, 'Lost connection to MySQL server during query')",),
    "prune_history": (
        "OperationalError: (1205, 'Lock wait timeout exceeded; try restarting transaction')",
    ),
}
ANY_TASK_ERRORS = ("OperationalError: (2006, 'MySQL server has gone away')",)
Status = Execution.Status


@dataclasses.dataclass
class Plan:
    """What one seeding does, and to which tasks the special cases happen."""

    days: int
    now: dt.datetime
    rng: random.Random
    circuit_task: Task
    timeout_task: Task
    rows: list[Execution] = dataclasses.field(default_factory=list)


def demo_tasks() -> list[Task]:
    """The demo's own active tasks, by priority: declared in DEMO_MODULES."""
    active = Task.objects.filter(retired_at__isnull=True, kind=Task.Kind.CALLABLE)
    return [
        task
        for task in active.order_by("priority", "name")
        if task.target.partition(":")[0] in DEMO_MODULES
    ]


def has_history() -> bool:
    """Any attempt or skip recorded, real or invented: `seed_history --if-empty` stops here."""
    return Execution.objects.exists()


def seed(
    days: int = 14, seed: int = 6, circuit_task: str = "", now: dt.datetime | None = None
) -> dict[str, int]:
    """Replace the demo history of the demo's own tasks; returns how many executions and
    alerts were written."""
    tasks = demo_tasks()
    if not tasks:
        raise ValueError(
            "none of the demo's tasks (declared in "
            f"{' or '.join(DEMO_MODULES)}) is in the database: run `manage.py synctasks` first"
        )
    plan = Plan(
        days=days,
        now=now or timezone.now(),
        rng=random.Random(seed),
        circuit_task=_pick(tasks, circuit_task, ("generate_ai_insights",), last=True),
        timeout_task=tasks[0],
    )
    if plan.timeout_task == plan.circuit_task and len(tasks) > 1:
        plan.timeout_task = tasks[1]
    for task in tasks:
        _history(plan, task)
    _failure_streak(plan)
    with transaction.atomic():
        _forget_previous_seed()
        Execution.objects.bulk_create(plan.rows, batch_size=BATCH)
        written = _open_circuit(plan)
    history.rebuild()  # bulk_create and the delete bypassed them; a demo history is small
    return {"executions": len(plan.rows), "tasks": len(tasks), "alerts": written}


def _pick(tasks: list[Task], name: str, preferred: tuple[str, ...], last: bool) -> Task:
    by_name = {task.name: task for task in tasks}
    if name:
        if name not in by_name:
            raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(by_name))}")
        return by_name[name]
    for candidate in preferred:
        if candidate in by_name:
            return by_name[candidate]
    return tasks[-1] if last else tasks[0]


def _forget_previous_seed() -> None:
    Execution.objects.filter(host=HOST).delete()
    Alert.objects.filter(message__endswith=MARK).delete()


def _fire_times(plan: Plan, task: Task) -> list[dt.datetime]:
    start = plan.now - dt.timedelta(days=plan.days)
    # The circuit task's last two hours are its failure streak, written separately.
    end = plan.now - dt.timedelta(hours=2 if task == plan.circuit_task else 0, minutes=2)
    if not task.schedule:
        count = plan.days * MANUAL_RUNS_PER_DAY
        return sorted(start + (end - start) * plan.rng.random() for _ in range(count))
    times, after = [], start
    while True:
        batch = schedules.next_runs(task.schedule, 200, after)
        times += [t for t in batch if t < end]
        if not batch or batch[-1] >= end:
            return times
        after = batch[-1]


def _history(plan: Plan, task: Task) -> None:
    rng = plan.rng
    typical = max(0.5, task.timeout * rng.uniform(0.02, 0.08))
    memory = rng.randint(40, 160) * 1024 * 1024
    times = _fire_times(plan, task)
    timeout_at = len(times) * 3 // 4 if task == plan.timeout_task else -1
    for number, when in enumerate(times):
        roll = rng.random()
        if number == timeout_at:
            statuses = [Status.TIMED_OUT, Status.SUCCEEDED]
        elif roll < 0.01:
            statuses = [Status.SKIPPED]
        elif roll < 0.025:
            statuses = [Status.FAILED] * task.max_attempts
        elif roll < 0.07:
            statuses = [Status.FAILED, Status.SUCCEEDED]
        else:
            statuses = [Status.SUCCEEDED]
        _run(plan, task, when, statuses, typical, memory, trigger="cron")


def _run(
    plan: Plan,
    task: Task,
    when: dt.datetime,
    statuses: Sequence[str],
    typical: float,
    memory: int,
    trigger: str,
) -> None:
    rng, run_id = plan.rng, f"{plan.rng.getrandbits(128):032x}"
    for attempt, status in enumerate(statuses, start=1):
        if status == Status.SKIPPED:
            plan.rows.append(
                Execution(
                    run_id=run_id,
                    task=task,
                    attempt=0,
                    trigger=trigger,
                    status=status,
                    skip_reason=Execution.SkipReason.OVERLAP,
                    host=HOST,
                    started_at=when,
                    finished_at=when,
                    duration=0.0,
                    error="another run holds the lease",
                )
            )
            return
        duration = (
            task.timeout if status == Status.TIMED_OUT else typical * rng.lognormvariate(0, 0.35)
        )
        failed = status != Status.SUCCEEDED
        plan.rows.append(
            Execution(
                run_id=run_id,
                task=task,
                attempt=attempt,
                trigger=trigger,
                status=status,
                host=HOST,
                pid=rng.randint(2000, 60000),
                started_at=when,
                finished_at=when + dt.timedelta(seconds=duration),
                duration=round(duration, 3),
                exit_code=None if status == Status.TIMED_OUT else int(failed),
                signal=15 if status == Status.TIMED_OUT else None,
                peak_rss_bytes=int(memory * rng.uniform(0.8, 1.25)),
                cpu_user=round(duration * 0.6, 3),
                cpu_system=round(duration * 0.05, 3),
                output=f"{task.name}: {'done' if not failed else 'giving up'}\n",
                error=_error(task, status, rng),
            )
        )
        when += dt.timedelta(seconds=duration + task.retry_delay)


def _error(task: Task, status: str, rng: random.Random) -> str:
    if status == Status.TIMED_OUT:
        return f"timed out after {task.timeout} s"
    return rng.choice(ERRORS.get(task.name, ANY_TASK_ERRORS)) if status == Status.FAILED else ""


def _failure_streak(plan: Plan) -> None:
    """Two runs of the circuit task in the last hour fail every attempt: five failures."""
    task = plan.circuit_task
    for minutes, attempts in ((58, 3), (28, 2)):
        when = plan.now - dt.timedelta(minutes=minutes)
        _run(plan, task, when, [Status.FAILED] * attempts, 4.0, 90 * 1024 * 1024, "cron")


def _open_circuit(plan: Plan) -> int:
    task, opened = plan.circuit_task, plan.now - dt.timedelta(minutes=26)
    CircuitState.objects.update_or_create(
        task=task,
        defaults={
            "state": CircuitState.State.OPEN,
            "opened_at": opened,
            "trial_run_id": "",
            "failure_count": 5,
            "changed_at": opened,
        },
    )
    # Raised through supervisor.alerts so they de-duplicate like real ones; then dated back.
    raised = [
        (Alert.Kind.FAILED, f"all attempts failed: {_error(task, Status.FAILED, plan.rng)}", 58, 2),
        (Alert.Kind.CIRCUIT_OPEN, "5 failed attempts within 1 hour", 26, 1),
    ]
    for kind, message, minutes, occurrences in raised:
        # Demo alerts are data, not news: no receiver hears about them.
        with override_settings(ALERT_EMAILS=[], ALERT_WEBHOOK_URL="", ALERT_URLS=[]):
            alert = alerts.raise_alert(task, kind, message + MARK)
        Alert.objects.filter(pk=alert.pk).update(
            first_seen=plan.now - dt.timedelta(minutes=minutes),
            occurrences=occurrences,
            last_seen=plan.now - dt.timedelta(minutes=26),
        )
    return len(raised) + _past_alert(plan)


def _past_alert(plan: Plan) -> int:
    """A resolved alert from days ago, so the alert list has history too."""
    when = plan.now - dt.timedelta(days=min(plan.days, 5))
    Alert.objects.create(
        task=plan.timeout_task,
        kind=Alert.Kind.SLOW,
        severity=Alert.Severity.WARNING,
        state=Alert.State.RESOLVED,
        message=f"took {plan.timeout_task.timeout} s" + MARK,
        first_seen=when,
        last_seen=when,
        resolved_at=when + dt.timedelta(hours=1),
    )
    return 1
