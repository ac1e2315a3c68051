#!/usr/bin/env python3
"""Two figures of issue 23 (docs/benchmarks.md, "Alerts that cut noise"):

1. baseline: what keeping the duration baseline adds to finalising a successful attempt
   (target < 2 ms). `--attempts` attempts of one task are finalised through
   `history.save(row)` the way the runner does, alternating in blocks between a task with
   `duration_alerts = "off"` (no baseline) and one with `"auto"` (the DurationBaseline row
   read under lock and rewritten); the median and p99 of each and the difference are printed,
   with the cost of judging one attempt against the baseline (`alerts.judge_duration`, an
   attempt inside the band: one read, no alert).
2. watchdog: one `watchdog.sweep()` with N current tasks (each ran on time) and 100 open
   alerts (30 critical, 10 dependants folded into one of them, warnings, a flapping task),
   for N = 100 and 500: wall time (median of `--passes`) and SQL statements. The
   target is < 0.5 s for 500 tasks, and statements that do not grow with N. Two passes: the
   usual one with nothing due, and one where each of the 30 critical alerts is due a reminder
   and an escalation (its notified time set back first). Receivers are configured but point
   at a closed port on 127.0.0.1, so each claimed send is a real (failing) Apprise send.

More state for the pass (maintenance windows, say) is one more function in SEEDERS.

    .venv/bin/python bench/alert_noise.py [--attempts 2000] [--passes 5] [--url DATABASE_URL]

Without --url each part uses a fresh SQLite database in a temporary directory; a mysql:// URL
uses (and empties) that MariaDB database.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "x" * 50)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flagged_cron_project.settings")
    os.environ["CRONJOBS_TASKS_FILE"] = str(ROOT / "bench" / "no-such-tasks.toml")
    os.environ["ALERT_URLS"] = "json://127.0.0.1:9/pager"  # closed port: fails at once
    os.environ["ALERT_ESCALATION_URLS"] = "json://127.0.0.1:9/boss"
    os.environ["ALERT_REPEAT_EVERY"] = "600"
    os.environ["ALERT_ESCALATE_AFTER"] = "600"
    if url.startswith("mysql"):
        from bench.seed_executions import create_database

        create_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from cronjobs.supervisor import notify  # sets the Apprise loggers' level on import

    for name in ("cronjobs.supervisor.notify", "apprise"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    assert notify


def empty() -> None:
    from cronjobs.models import Alert, DurationBaseline, Execution, Rollup, Task

    Alert.objects.all().delete()
    DurationBaseline.objects.all().delete()
    Execution.objects.all().delete()
    Rollup.objects.all().delete()
    Task.objects.all().delete()


def make_tasks(count: int, prefix: str = "t", **fields: Any) -> list[Any]:
    from cronjobs.models import Task

    values = {
        "kind": "command",
        "target": '["true"]',
        "source": "bench",
        "schedule": "*/5 * * * *",
        "timeout": 60,
        "max_attempts": 1,
        "slow_after": 48.0,
        **fields,
    }
    Task.objects.bulk_create(
        [Task(name=f"{prefix}{i:04d}", **values) for i in range(count)], batch_size=500
    )
    tasks = list(Task.objects.filter(name__startswith=prefix).order_by("name"))
    # Created long ago: every one is expected to have run at its latest slot.
    Task.objects.filter(name__startswith=prefix).update(
        created_at=tasks[0].created_at - timedelta(days=7)
    )
    return tasks


# 1. The baseline ------------------------------------------------------------------------------


def finalise_times(task: Any, count: int) -> list[float]:
    from django.utils import timezone

    from cronjobs import history
    from cronjobs.models import Execution

    times = []
    for i in range(count):
        row = Execution(run_id=uuid.uuid4().hex, task=task, status="running")
        row.save()
        row.status, row.finished_at = "succeeded", timezone.now()
        row.duration = 0.6 + (i % 7) / 100
        began = time.perf_counter()
        history.save(row)
        times.append(time.perf_counter() - began)
    return times


def judge_times(task: Any, count: int) -> list[float]:
    from cronjobs.models import Execution
    from cronjobs.supervisor import alerts
    from cronjobs.supervisor.registry import build_spec

    spec = build_spec(
        task.name, "command", ["true"], {"timeout": 60, "duration_alerts": "auto"}, "b"
    )
    row = Execution.objects.filter(task=task, status="succeeded").first()
    assert row is not None
    times = []
    for _ in range(count):
        began = time.perf_counter()
        assert alerts.judge_duration(task, spec, [row]) == ""
        times.append(time.perf_counter() - began)
    return times


def bench_baseline(attempts: int) -> None:
    from django.db import connection

    empty()
    [off] = make_tasks(1, "off")
    [auto] = make_tasks(1, "auto", duration_alerts="auto", duration_baseline=20)
    plain: list[float] = []
    kept: list[float] = []
    block = 100
    for _ in range(max(1, attempts // block)):
        plain += finalise_times(off, block)
        kept += finalise_times(auto, block)
    judged = judge_times(auto, 500)
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"baseline ({connection.vendor}), {len(plain):,} successful attempts of each kind")
    for name, times in (
        ('history.save, duration_alerts "off"', plain),
        ('history.save, duration_alerts "auto"', kept),
        ("judge_duration (inside the band)", judged),
    ):
        cuts = statistics.quantiles(times, n=100)
        median = statistics.median(times) * 1000
        print(
            f"  {name:38} p10 {cuts[9] * 1000:.2f} ms, median {median:.2f} ms, "
            f"p99 {cuts[98] * 1000:.2f} ms"
        )
    # The update's share (auto - off) plus judging; at the medians, and at the fastest tenth
    # (p10), which a loaded machine disturbs least.
    for label, pick in (("medians", statistics.median), ("p10s", lambda t: quantile(t, 9))):
        added = pick(kept) - pick(plain) + pick(judged)
        print(f"  the baseline adds {added * 1000:.2f} ms a successful attempt ({label})")


def quantile(times: list[float], index: int) -> float:
    return statistics.quantiles(times, n=100)[index]


# 2. The watchdog pass ---------------------------------------------------------------------------


def seed_ran_on_time(tasks: list[Any]) -> None:
    """One success per task a minute ago: nobody is late."""
    from django.utils import timezone

    from cronjobs.models import Execution

    now = timezone.now()
    Execution.objects.bulk_create(
        [
            Execution(
                run_id=uuid.uuid4().hex,
                task=task,
                status="succeeded",
                started_at=now - timedelta(minutes=1),
                finished_at=now - timedelta(seconds=59),
                duration=1.0,
            )
            for task in tasks
        ],
        batch_size=500,
    )


def seed_open_alerts(tasks: list[Any]) -> None:
    """100 open alerts on the first tasks: 30 critical `failed` notified long ago (each due a
    reminder and an escalation), 10 `late` folded into one of them, 50 warnings (`slow`), and
    one flapping task with its `flapping` alert and 9 `memory` warnings of other tasks."""
    from django.utils import timezone

    from cronjobs.models import Alert

    now = timezone.now()
    old = now - timedelta(hours=2)

    def alert(task: Any, kind: str, severity: str, **fields: Any) -> Alert:
        return Alert(
            task=task,
            kind=kind,
            severity=severity,
            open_key=f"{task.pk}:{kind}",
            message=f"{kind} on {task.name}",
            first_seen=old,
            last_seen=old,
            **fields,
        )

    failed = Alert.objects.bulk_create(
        [alert(t, "failed", "critical", notified_at=old) for t in tasks[:30]]
    )
    rows = [alert(t, "late", "critical", incident=failed[0]) for t in tasks[30:40]]
    rows += [alert(t, "slow", "warning", notified_at=old) for t in tasks[40:90]]
    rows += [alert(tasks[90], "flapping", "warning", notified_at=old)]
    rows += [alert(t, "memory", "warning", notified_at=old) for t in tasks[91:100]]
    Alert.objects.bulk_create(rows)


# Each takes the tasks and adds what one more kind of state costs the pass.
SEEDERS: list[Callable[[list[Any]], None]] = [seed_ran_on_time, seed_open_alerts]


def bench_watchdog(passes: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from cronjobs.models import Alert
    from cronjobs.supervisor import alerts, watchdog

    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"watchdog pass ({connection.vendor}), 100 open alerts, median of {passes} passes")
    for count in (100, 500):
        empty()
        tasks = make_tasks(count)
        for seed in SEEDERS:
            seed(tasks)
        for due in (False, True):
            sweeps, queries, added, added_queries = [], [], [], []
            for _ in range(passes):
                # Quiet: notified a moment ago, escalated already. Due: a reminder and an
                # escalation for each of the 30 critical alerts.
                Alert.objects.filter(kind="failed").update(
                    notified_at=timezone.now() - timedelta(hours=1 if due else 0),
                    escalated_at=None if due else timezone.now(),
                )
                with CaptureQueriesContext(connection) as captured:
                    began = time.perf_counter()
                    report = watchdog.sweep()
                    sweeps.append(time.perf_counter() - began)
                queries.append(len(captured))
                assert report["late"] == [], report["late"][:5]
                assert len(report["reminders"]["repeated"]) == (30 if due else 0)
                Alert.objects.filter(kind="failed").update(
                    notified_at=timezone.now() - timedelta(hours=1 if due else 0),
                    escalated_at=None if due else timezone.now(),
                )
                with CaptureQueriesContext(connection) as captured:
                    began = time.perf_counter()
                    alerts.send_reminders()
                    alerts.calm_flapping()
                    added.append(time.perf_counter() - began)
                added_queries.append(len(captured))
            what = "30 reminders + 30 escalations sent" if due else "nothing due"
            print(
                f"  {count:4} tasks, {what:34}: sweep {statistics.median(sweeps):.3f} s, "
                f"{statistics.median(queries):.0f} statements; of which reminders and "
                f"flapping {statistics.median(added):.3f} s, "
                f"{statistics.median(added_queries):.0f} statements"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=2000)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--url", default="", help="a mysql:// URL (default: SQLite, temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        setup(args.url or f"sqlite:///{Path(workdir) / 'bench.sqlite3'}")
        bench_baseline(args.attempts)
        bench_watchdog(args.passes)


if __name__ == "__main__":
    main()
