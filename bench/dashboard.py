#!/usr/bin/env python3
"""The dashboard's content with many tasks (issue 16, docs/benchmarks.md "The dashboard's
small multiples"): what building it costs with a cold cache, what drawing its charts costs
per chart, and what it weighs.

    .venv/bin/python bench/dashboard.py [--tasks 100] [--days 30] [--rows 30000] [--repeat 5]
                                        [--database-url mysql://root:@127.0.0.1:3306/flagged_cron_bench_dashboard]

A fresh SQLite database in a temporary directory (or the MariaDB one given, emptied first)
gets `--tasks` bench tasks and `--rows` executions spread over the last `--days` days
(bench/seed_executions.py's rows: every task runs every day), then its rollups
(cronjobs.history.rebuild). Figures, in process after Django's start-up, each the
median of `--repeat` after one warm-up:

- content: `build_context()` and the content template, i.e. the dashboard's work when the
  shared cache is empty (without the request and the admin page around it);
- charts: only the drawing, on the figures already read: every small multiple (per chart) and
  the runs-per-hour chart;
- the content's size in KiB.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def median_seconds(work: Callable[[], object], repeat: int) -> float:
    work()  # warm-up: template loading, first connection
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def seed(tasks: int, rows: int, days: int) -> None:
    from django.core.management import call_command
    from django.db import connection, transaction

    from bench.seed_executions import insert_rows, make_tasks
    from bench.seed_executions import rows as execution_rows
    from cronjobs import history
    from cronjobs.models import Task

    call_command("migrate", verbosity=0)
    # migrate's synctasks retires every task no code declares: a second run on MariaDB would
    # otherwise chart retired tasks under their ids and leave them out of the health table.
    Task.objects.filter(source="bench").update(retired_at=None)
    with connection.cursor() as cursor:
        for table in ("cronjobs_execution", "cronjobs_rollup"):
            cursor.execute(f"DELETE FROM {table}")
    began = time.monotonic()
    with transaction.atomic():  # SQLite would otherwise commit (and sync) every row
        insert_rows(execution_rows(rows, make_tasks(tasks), days, random.Random(7)))
    inserted = time.monotonic()
    history.rebuild()
    print(
        f"seeded {rows:,} executions of {tasks} tasks in {inserted - began:.1f} s, "
        f"rollups in {time.monotonic() - inserted:.1f} s"
    )


def measure(repeat: int) -> None:
    from django.template.loader import render_to_string
    from django.utils import timezone

    from cronjobs.models import Task
    from cronjobs.reporting import stats
    from cronjobs.views import charts, dashboard

    def content() -> str:
        return render_to_string("cronjobs/dashboard_content.html", dashboard.build_context())

    now = timezone.now()
    trends = stats.daily_trends(dashboard.TREND_DAYS, now)
    names = dict(Task.objects.filter(retired_at__isnull=True).values_list("pk", "name"))
    days = dashboard.chart_days(trends, dashboard._days(now))
    hours = stats.runs_per_hour(24, now)
    count = sum(
        len(charts.small_multiples(m, trends, names, days)) for m in dashboard.METRICS.values()
    )

    def multiples() -> None:
        for metric in dashboard.METRICS.values():
            charts.small_multiples(metric, trends, names, days)

    built = median_seconds(content, repeat)
    drawn = median_seconds(multiples, repeat)
    runs = median_seconds(lambda: charts.runs_per_hour(hours), repeat)
    size = len(content().encode()) / 1024
    print(f"content (build_context + template), cold cache: {built * 1000:.0f} ms")
    print(
        f"small multiples: {count} charts over {len(days)} days in {drawn * 1000:.1f} ms, "
        f"{drawn / max(count, 1) * 1000:.3f} ms a chart"
    )
    print(f"runs per hour: {runs * 1000:.2f} ms")
    print(f"content size: {size:.0f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", help="MariaDB instead of a temporary SQLite file")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(f"{time.strftime('%Y-%m-%d %H:%M')} at {commit}: {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory(prefix="fc-bench-dashboard-") as workdir:
        run(args, Path(workdir))


def run(args: argparse.Namespace, workdir: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="flagged_cron_project.settings",
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench-only-secret-" + "x" * 50),
        DATABASE_URL=args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        LOG_DIR=str(workdir / "logs"),
        # Only the bench's tasks: no declared ones beside them.
        CRONJOBS_TASKS_FILE=str(workdir / "none.toml"),
    )
    if args.database_url:
        from bench.seed_executions import create_database

        create_database(args.database_url)
    import django

    django.setup()
    seed(args.tasks, args.rows, args.days)
    measure(args.repeat)


if __name__ == "__main__":
    main()
