#!/usr/bin/env python3
"""Ten thousand declared tasks (issue 26): what each surface that reads every task costs with
1,000 and with 10,000 tasks declared, wall time and SQL queries side by side.

The tasks file is generated: 28% daily (`M H * * *`), 70% weekly (`M H * * D`), a few every N
minutes (`*/10`, `*/15`, `*/20`, `*/30`), the rest monthly (`M H D * *`), spread over the day,
one in ten with a `time_zone` (Europe/London, America/New_York, Asia/Tokyo, Australia/Sydney),
one in twenty with `catch_up`; about 3 due per minute at 10,000. Each task has one successful run
at its latest slot, and the rows were created a week ago (the watchdog judges them).

Each size runs in a process of its own with a fresh database (SQLite in a temporary directory,
or `--database-url`'s MariaDB database, dropped and made anew). Each figure is the median of
`--repeat` timings in that process after Django's start-up, with the schedule caches emptied
before each one (the first look of a minute, the worst), and the registry reloaded from the file
for each command (every command is a process of its own):

  synctasks, all new   every row created;       synctasks            nothing changed;
  check                `manage.py check`;        crontab add          into a crontab file kept by
                                                                     a stand-in `crontab` (the
                                                                     CRONTAB_EXECUTABLE seam);
  runjob --list;       watchdog sweep;           overview /admin/;    task list
  /api/status/;        /metrics;                 slots.find           what a per-minute
                                                                     dispatcher asks of every task;
  may_be_due, then find  the same with the shortcut first, in a process that has compiled every
                         schedule (a dispatcher that runs on).

    .venv/bin/python bench/ten_thousand_tasks.py [--sizes 1000,10000] [--repeat 3]
        [--database-url mysql://root@127.0.0.1:3306/flagged_cron_bench_ten_thousand]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ZONES = ("Europe/London", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
EVERY = ("*/10 * * * *", "*/15 * * * *", "*/20 * * * *", "*/30 * * * *")
# What a crontab command does with a file instead of root's crontab: `-l` prints it, `-` stores
# stdin; enough for django-crontab's read-edit-write cycle.
FAKE_CRONTAB = """#!/bin/sh
if [ "$1" = "-l" ]; then
  [ -f "{file}" ] || {{ echo "no crontab for bench" >&2; exit 1; }}
  exec cat "{file}"
fi
exec cat > "{file}"
"""


def schedule_of(n: int) -> str:
    """The n-th task's schedule: spread over the minutes of the day and the days of the week."""
    minute, hour, weekday = n % 60, (n // 60) % 24, (n // 1440) % 7
    kind = n % 50
    if kind < 14:
        return f"{minute} {hour} * * *"
    if kind < 49:
        return f"{minute} {hour} * * {weekday}"
    if n % 1000 == 49:
        return EVERY[(n // 1000) % len(EVERY)]
    return f"{minute} {hour} {1 + n % 28} * *"


def tasks_toml(count: int) -> str:
    parts = []
    for n in range(count):
        lines = [
            f"[tasks.bench_{n:05d}]",
            'command = ["true"]',
            f'schedule = "{schedule_of(n)}"',
            "timeout = 60",
        ]
        if n % 10 == 3:
            lines.append(f'time_zone = "{ZONES[(n // 10) % len(ZONES)]}"')
        if n % 20 == 7:
            lines.append("catch_up = true")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--inner", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        print(json.dumps(measure_size(args)))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    results = {}
    for size in sizes:
        workdir = tempfile.mkdtemp(prefix=f"bench-ten-thousand-{size}-")
        command = [sys.executable, __file__, "--inner", str(size), "--workdir", workdir]
        command += ["--repeat", str(args.repeat), "--database-url", args.database_url]
        done = subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
        results[size] = json.loads(done.stdout.strip().splitlines()[-1])
    print_table(sizes, results, args)


def print_table(sizes: list[int], results: dict[int, dict], args: argparse.Namespace) -> None:
    database = (args.database_url or "sqlite").split(":")[0]
    print(f"database: {database}; median of {args.repeat}; schedule caches empty each time")
    head = f"{'surface':<22}" + "".join(f"{f'{size:,} tasks':>24}" for size in sizes)
    print(head)
    print("-" * len(head))
    for surface in results[sizes[0]]:
        cells = []
        for size in sizes:
            seconds, queries = results[size][surface]
            cells.append(f"{seconds * 1000:>10.1f} ms {queries:>6} q")
        print(f"{surface:<22}" + "".join(f"{cell:>24}" for cell in cells))


def measure_size(args: argparse.Namespace) -> dict[str, tuple[float, int]]:
    workdir = Path(args.workdir)
    tasks_file = workdir / "tasks.toml"
    tasks_file.write_text(tasks_toml(args.inner))
    crontab_file = workdir / "crontab"
    fake = workdir / "crontab.sh"
    fake.write_text(FAKE_CRONTAB.format(file=crontab_file))
    fake.chmod(0o755)
    url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="flagged_cron_project.settings",
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench-only-secret-" + "x" * 50),
        DATABASE_URL=url,
        LOG_DIR=str(workdir / "logs"),
        CRONJOBS_TASKS_FILE=str(tasks_file),
        TIME_ZONE="UTC",
        TZ="UTC",
        STATIC_ROOT=str(workdir / "static"),
    )
    if url.startswith("mysql"):
        fresh_mariadb(url)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG is off: the manifest
    settings.CRONTAB_EXECUTABLE = str(fake)
    # The installed lines load this file: `crontab add` checks a fresh interpreter with cron's
    # bare environment reads the same settings.
    env_file = workdir / "cron.env"
    checked = ("DATABASE_URL", "LOG_DIR", "CRONJOBS_TASKS_FILE", "TIME_ZONE", "SECRET_KEY")
    env_file.write_text("".join(f"{name}={os.environ[name]}\n" for name in checked))
    settings.ALLOWED_HOSTS = ["*"]
    figures: dict[str, tuple[float, int]] = {}
    # `migrate` synced the tasks already: the first sync is measured from an empty table.
    figures["synctasks, all new"] = timed(lambda: command("synctasks"), 1, no_tasks)
    seed_history()
    surfaces: dict[str, Callable[[], object]] = {
        "synctasks": lambda: command("synctasks"),
        "check": lambda: command("check"),
        "crontab add": lambda: command("crontab", "add", "--env-file", str(env_file)),
        "runjob --list": lambda: command("runjob", "--list"),
    }
    for name, surface in surfaces.items():
        figures[name] = timed(surface, args.repeat, fresh_registry)
    figures.update(web_surfaces(args.repeat))
    figures["slots.find, every task"] = timed(find_every_slot, args.repeat, clear_caches)
    figures["may_be_due, then find"] = timed(find_due_slots, args.repeat, warm_schedules)
    return figures


def fresh_mariadb(url: str) -> None:
    import dj_database_url
    import MySQLdb

    config = dj_database_url.parse(url)
    connection = MySQLdb.connect(
        host=config["HOST"] or "127.0.0.1",
        port=int(config["PORT"] or 3306),
        user=config["USER"],
        password=config["PASSWORD"],
    )
    cursor = connection.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS `{config['NAME']}`")
    cursor.execute(
        f"CREATE DATABASE `{config['NAME']}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    connection.close()


def command(*words: str) -> None:
    from django.core.management import call_command

    call_command(*words, stdout=StringIO(), stderr=StringIO())


def clear_caches() -> None:
    """The schedules' per-expression and per-minute caches, as a fresh process has them."""
    from cronjobs import schedules

    for function in vars(schedules).values():
        if hasattr(function, "cache_clear"):
            function.cache_clear()


def fresh_registry() -> None:
    from cronjobs.supervisor.registry import registry

    clear_caches()
    registry._loaded = False  # the next reader loads the file, as a new process would


def no_tasks() -> None:
    from cronjobs.models import Task

    Task.objects.all().delete()
    fresh_registry()


def timed(work: Callable[[], object], repeat: int, before: Callable[[], None]) -> tuple[float, int]:
    """Median seconds and the queries of one run. Queries are counted by a wrapper, not
    Django's query log, which keeps only the last 9,000."""
    from django.db import connection

    times, counted = [], []

    def count(execute, sql, params, many, context):
        counted[-1] += 1
        return execute(sql, params, many, context)

    for _ in range(repeat):
        before()
        counted.append(0)
        with connection.execute_wrapper(count):
            began = time.perf_counter()
            work()
            times.append(time.perf_counter() - began)
    return statistics.median(times), counted[-1]


def seed_history() -> None:
    """One successful run per task at its latest slot, and every row a week old, so that the
    watchdog judges every task and the pages show a last run for each."""
    from django.utils import timezone

    from cronjobs import history, schedules
    from cronjobs.models import Execution, Task

    now = timezone.now()
    Task.objects.update(created_at=now - dt.timedelta(days=7))
    rows = []
    for task in Task.objects.all():
        slot = schedules.previous_run(task.schedule, now, task.time_zone)
        if slot is None:
            continue
        rows.append(
            Execution(
                task=task,
                run_id=f"{task.pk:032x}",
                status=Execution.Status.SUCCEEDED,
                trigger=Execution.Trigger.CRON,
                started_at=slot,
                finished_at=slot + dt.timedelta(seconds=1),
                duration=1.0,
                exit_code=0,
                scheduled_for=slot,
            )
        )
    Execution.objects.bulk_create(rows, batch_size=1000)
    history.rebuild(now - dt.timedelta(days=8))


def web_surfaces(repeat: int) -> dict[str, tuple[float, int]]:
    from django.contrib.auth.models import User
    from django.test import Client

    from cronjobs import tokens
    from cronjobs.supervisor import watchdog

    admin = User.objects.create_superuser("bench", "bench@example.com", "bench-password")
    browser = Client()
    browser.force_login(admin)
    _, secret = tokens.create_token("bench", read_only=True, from_command_line=True)
    api = Client(headers={"authorization": f"Bearer {secret}"})

    def get(client: Client, url: str) -> Callable[[], object]:
        def fetch() -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        return fetch

    surfaces = {
        "watchdog sweep": watchdog.sweep,
        "overview /admin/": get(browser, "/admin/"),
        "task list": get(browser, "/admin/cronjobs/task/"),
        "/api/status/": get(api, "/api/status/"),
        "/metrics": get(api, "/metrics"),
    }
    figures = {}
    for name, surface in surfaces.items():
        surface()  # sessions, templates and the first alerts: not what is measured
        figures[name] = timed(surface, repeat, clear_caches)
    return figures


def find_every_slot() -> None:
    """What a per-minute dispatcher asks: the slot of every declared task at this minute."""
    from django.utils import timezone

    from cronjobs.supervisor import slots
    from cronjobs.supervisor.registry import registry

    now = timezone.now().replace(second=1, microsecond=0)
    for spec in registry.load().tasks.values():
        slots.find(spec, now)


def warm_schedules() -> None:
    """A dispatcher's state a minute later: every expression compiled, no next run cached."""
    from cronjobs import schedules

    schedules._next_run_after_minute.cache_clear()
    find_due_slots()


def find_due_slots() -> None:
    """The same with slots.may_be_due first: find only for the tasks that may be due."""
    from django.utils import timezone

    from cronjobs.supervisor import slots
    from cronjobs.supervisor.registry import registry

    now = timezone.now().replace(second=1, microsecond=0)
    for spec in registry.load().tasks.values():
        if slots.may_be_due(spec, now):
            slots.find(spec, now)


if __name__ == "__main__":
    main()
