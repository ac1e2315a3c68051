#!/usr/bin/env python3
"""Two figures of issue 14 (docs/benchmarks.md, "Scheduling"):

1. stop: seconds from `manage.py stopjob` returning to the job's process group being gone, for
   a job that exits on SIGTERM and one that ignores it (CRONJOBS_KILL_GRACE, default 5 s). A
   real `runjob` runs each job; the stop comes from a second process, through the database.
2. watchdog: the catch-up pass and the late check with N declared tasks that all have
   `catch_up` (wall time after Django start-up, and SQL queries), for N = 50 and 500:
   a. no slot missed (every task ran at its slot): the usual pass;
   b. every slot missed: N slots claimed (one UPDATE each); the run starts are counted but not
      made here (500 runjob processes at once would measure the machine, not the watchdog);
      the cost of one real detached start is measured on its own.

    .venv/bin/python bench/scheduling.py [--runs 3] [--grace 5]

Each uses a fresh SQLite database in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBS = """
[tasks.polite]
command = ["sh", "-c", "echo $$ > {dir}/polite.pid; exec sleep 300"]
timeout = 600
max_attempts = 3
retry_delay = 0

[tasks.stubborn]
command = ["sh", "-c", "echo $$ > {dir}/stubborn.pid; trap '' TERM; while true; do sleep 0.1; done"]
timeout = 600
max_attempts = 3
retry_delay = 0
"""


def group_gone(pgid: int) -> bool:
    """No live process left in the group. Zombies are not counted: they hold no memory and
    run nothing, and this machine's init (not systemd) reaps orphans only every second or two,
    which would be measured instead of the stop."""
    import psutil

    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return False
        except (ProcessLookupError, psutil.Error):
            continue
    return True


def wait(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.005)


def stop_once(name: str, env: dict[str, str], workdir: Path) -> float:
    manage = [sys.executable, str(ROOT / "manage.py")]
    pid_file = workdir / f"{name}.pid"
    pid_file.unlink(missing_ok=True)
    runjob = subprocess.Popen(
        [*manage, "runjob", name],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    pgid = os.getpgid(int(pid_file.read_text()))
    subprocess.run([*manage, "stopjob", name], env=env, cwd=ROOT, check=True, capture_output=True)
    asked = time.monotonic()
    wait(lambda: group_gone(pgid))
    seconds = time.monotonic() - asked
    runjob.wait(timeout=60)
    return seconds


def bench_stop(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> None:
    print(
        f"stop: lease beat {env['CRONJOBS_LEASE_BEAT']} s, grace {args.grace} s, {args.runs} runs"
    )
    for name, target in (("polite", 3.0), ("stubborn", args.grace + 3.0)):
        samples = [stop_once(name, env, workdir) for _ in range(args.runs)]
        median = statistics.median(samples)
        print(
            f"  {name:<9} exits on TERM: {name == 'polite'!s:<5}  median {median:.2f} s"
            f"  max {max(samples):.2f} s  (target < {target:g} s)"
        )


def bench_watchdog() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from cronjobs import schedules
    from cronjobs.models import Execution, Task
    from cronjobs.supervisor import runner
    from cronjobs.supervisor.watchdog import catch_up, check_late

    call_command("migrate", verbosity=0)
    expressions = (
        "5 7 * * *",
        "*/30 * * * *",
        "0 2 * * *",
        "0 */6 * * *",
        "0 * * * *",
        "15 3 * * 1",
    )
    now = timezone.now()
    print("watchdog: wall time after start-up and SQL queries of each part of the pass")
    for count in (50, 500):
        Execution.objects.all().delete()
        Task.objects.all().delete()
        created = now - timedelta(days=10)
        Task.objects.bulk_create(
            Task(
                name=f"bench_{n}",
                kind="command",
                target='["true"]',
                schedule=expressions[n % len(expressions)],
                timeout=60,
                slow_after=48,
                catch_up=True,
            )
            for n in range(count)
        )
        Task.objects.update(created_at=created)
        tasks = list(Task.objects.all())
        Execution.objects.bulk_create(
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
        for label, missed in (("no slot missed", False), ("every slot missed", True)):
            if missed:
                Execution.objects.all().delete()
            with CaptureQueriesContext(connection) as queries:
                began = time.perf_counter()
                caught = catch_up(now, start=lambda name, trigger: None)
                middle, asked = time.perf_counter(), len(queries)
                late = check_late(now)["late"]
                ended = time.perf_counter()
            print(
                f"  {count:>4} tasks, {label:<18} catch_up {(middle - began) * 1000:7.1f} ms"
                f" {asked:>4} queries ({len(caught)} runs);  check_late"
                f" {(ended - middle) * 1000:7.1f} ms {len(queries) - asked:>5} queries"
                f" ({len(late)} late alerts)"
            )
    began = time.perf_counter()
    runner.start_in_background("bench_0", "catch_up")
    spent = (time.perf_counter() - began) * 1000
    print(f"  one real detached start (start_in_background): {spent:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--grace", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fc-bench-scheduling-"))
    tasks = workdir / "tasks.toml"
    tasks.write_text(JOBS.format(dir=workdir))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flagged_cron_project.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-" + "x" * 50),
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "LOG_DIR": str(workdir / "logs"),
        "CRONJOBS_TASKS_FILE": str(tasks),
        "CRONJOBS_KILL_GRACE": str(args.grace),
        "CRONJOBS_LEASE_BEAT": os.environ.get("CRONJOBS_LEASE_BEAT", "2"),
    }
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True
    )
    bench_stop(args, env, workdir)
    os.environ.update(env)
    os.environ["CRONJOBS_TASKS_FILE"] = str(workdir / "none.toml")
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'watchdog.sqlite3'}"
    sys.path.insert(0, str(ROOT))
    bench_watchdog()


if __name__ == "__main__":
    main()
