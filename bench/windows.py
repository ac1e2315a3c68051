#!/usr/bin/env python3
"""Maintenance windows' cost (docs/benchmarks.md, "Maintenance windows"):

1. a whole watchdog pass (`watchdog.sweep()`: snoozes and mute windows ended, leases reaped,
   catch-up, late, success rates) with N tasks (50 and 500), 100 open alerts, and either no
   maintenance window (the path before windows) or 10 windows on now (recurring and one-off,
   skip and mute, named tasks and `*`): wall time in-process after Django's start-up, median of
   `--runs`, and the SQL queries of one pass;
2. the question itself when every task missed its slot (what `check_late` then asks): one
   `Calendar` from the oldest slot (a weekly task's, days back) to now, and each of the N tasks
   asked about its own slot;
3. the runner's gate: what one scheduled `runjob` adds to ask whether its task is in a `skip`
   window (`Calendar().covering`), with the same 10 windows.

    .venv/bin/python bench/windows.py [--runs 5]

On a fresh SQLite database in a temporary directory. Target: a pass under 0.5 s with 500
tasks, and queries that do not grow with the number of tasks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEDULES = ("5 7 * * *", "*/30 * * * *", "0 2 * * *", "0 */6 * * *", "0 * * * *", "15 3 * * 1")
OPEN_ALERTS = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-windows-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="flagged_cron_project.settings",
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{workdir / 'windows.sqlite3'}",
        LOG_DIR=str(workdir / "logs"),
        CRONJOBS_TASKS_FILE=str(workdir / "none.toml"),
        ALERT_URLS="",
        ALERT_EMAILS="",
        ALERT_WEBHOOK_URL="",
        CRONJOBS_WATCHDOG_PING_URL="",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    bench(args.runs)


def bench(runs: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from cronjobs import schedules, windows
    from cronjobs.models import Alert, Execution, MaintenanceWindow, Task
    from cronjobs.supervisor import watchdog

    now = timezone.now()
    print(f"watchdog pass: median of {runs}, after start-up; {OPEN_ALERTS} open alerts")
    print(f"  {'tasks':>5} {'windows':>7} {'pass':>9} {'queries':>8}")
    for count in (50, 500):
        Alert.objects.all().delete()
        Execution.objects.all().delete()
        MaintenanceWindow.objects.all().delete()
        Task.objects.all().delete()
        Task.objects.bulk_create(
            Task(
                name=f"bench_{n}",
                kind="command",
                target='["true"]',
                schedule=SCHEDULES[n % len(SCHEDULES)],
                timeout=60,
                slow_after=48,
                catch_up=True,
            )
            for n in range(count)
        )
        Task.objects.update(created_at=now - timedelta(days=10))
        tasks = list(Task.objects.all())
        Execution.objects.bulk_create(  # every task ran at its latest slot: nothing is late
            Execution(
                run_id=f"{task.pk:032x}",
                task=task,
                status="succeeded",
                started_at=schedules.previous_run(task.schedule, now) + timedelta(seconds=1),
                finished_at=now,
                duration=1.0,
            )
            for task in tasks
        )
        Alert.objects.bulk_create(
            Alert(
                task=task,
                kind="failed",
                severity="critical",
                open_key=f"{task.pk}:failed",
                message="bench",
                notified_at=now,
            )
            for task in tasks[:OPEN_ALERTS]
        )
        for with_windows in (False, True):
            if with_windows:
                make_windows(tasks, now)
            samples, queries = [], 0
            for _ in range(runs):
                with CaptureQueriesContext(connection) as captured:
                    began = time.perf_counter()
                    watchdog.sweep()
                    samples.append(time.perf_counter() - began)
                queries = len(captured)
            shown = f"{MaintenanceWindow.objects.count()}" if with_windows else "0"
            print(
                f"  {count:>5} {shown:>7} {statistics.median(samples) * 1000:7.1f} ms {queries:>8}"
            )
        every_slot(runs, tasks, now)
    gate(runs, windows)


def every_slot(runs: int, tasks: list, now) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cronjobs import windows
    from cronjobs.supervisor.watchdog import due_times

    due = due_times(tasks, now)
    samples = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            calendar = windows.Calendar(now, since=min(due.values()))
            skipped = [t for t in tasks if calendar.covering(t.name, due[t.pk], mode="skip")]
            samples.append(time.perf_counter() - began)
    print(
        f"  every one of {len(tasks)} slots asked (oldest {now - min(due.values())} ago): "
        f"{statistics.median(samples) * 1000:.1f} ms, {len(captured)} query, "
        f"{len(skipped)} in a skip window"
    )


def make_windows(tasks: list, now) -> None:
    """10 windows on now: 4 recurring (each a different start and length), 6 one-off; skip and
    mute; 50 named tasks each, one of them over every task."""
    from cronjobs.models import MaintenanceWindow

    recurring = [
        ("0 * * * *", 3 * 3600),
        ("*/15 * * * *", 3600),
        ("0 0 * * *", 86400),
        ("*/5 * * * *", 600),
    ]
    rows = []
    for n in range(10):
        names = ",".join(task.name for task in tasks[n * 50 % len(tasks) :][:50])
        fields = {
            "tasks": "*" if n == 9 else names,
            "mode": "skip" if n % 2 else "mute",
            "reason": f"bench window {n}",
        }
        if n < 4:
            start, length = recurring[n]
            rows.append(
                MaintenanceWindow(
                    name=f"w{n}",
                    recurring=True,
                    start=start,
                    duration=length,
                    time_zone="UTC",
                    **fields,
                )
            )
        else:
            rows.append(
                MaintenanceWindow(
                    starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1), **fields
                )
            )
    MaintenanceWindow.objects.bulk_create(rows)


def gate(runs: int, windows) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    samples = []
    for _ in range(runs * 20):
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            windows.Calendar().covering("bench_7", mode=windows.Mode.SKIP)
            samples.append(time.perf_counter() - began)
    print(
        f"runner gate (one runjob asks for its task, 10 windows): median "
        f"{statistics.median(samples) * 1000:.2f} ms, {len(captured)} query"
    )


if __name__ == "__main__":
    main()
