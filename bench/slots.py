#!/usr/bin/env python3
"""What one run per slot costs (issue 22), in three figures:

1. the claim itself, in-process: `slots.find` (the slot from the schedule, no database), a
   winning claim (the conditional UPDATE that moves `claimed_slot` on) and a losing one (the
   UPDATE that matches no row), medians and p99 of `--claims` each. Target: < 5 ms on MariaDB.
2. end to end: `runjob bench_slot --trigger cron` (scheduled every minute: finds, claims) against
   `runjob bench_noop --trigger cron` (no schedule: no slot) and `crontab run --skip-checks`,
   fresh processes, interleaved, medians of `--runs`. Every command runs under libfaketime
   (`faketime`), each round at a minute of its own so every slot-bound call wins its claim.
3. start lag: 1, 10 and 50 tasks due in the same minute on this host, all started at the real
   minute's first second as cron does (one `runjob --trigger cron` process each); p50, p99 and
   the worst of their first attempts' starts after that minute.

    .venv/bin/python bench/slots.py [--runs 15] [--claims 500] [--database-url mysql://...]
        [--parts claims,end-to-end,lag]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.runjob_overhead import JOB, crontab_hash, measure  # noqa: E402
from bench.seed_executions import create_database  # noqa: E402

LAG_TASKS = (1, 10, 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--claims", type=int, default=500)
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--parts", default="claims,end-to-end,lag", help="which parts, comma-separated"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-slots-"))
    tasks_file = workdir / "tasks.toml"
    tasks_file.write_text(lag_tasks(max(LAG_TASKS)))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        "LOG_DIR": str(workdir / "logs"),
        "CRONJOBS_TASKS_FILE": str(tasks_file),
        "TIME_ZONE": "UTC",
        "TZ": "UTC",
        "DONT_FAKE_MONOTONIC": "1",
    }
    database = env["DATABASE_URL"].split(":")[0]
    if database == "mysql":
        create_database(env["DATABASE_URL"])
    python, manage = sys.executable, str(ROOT / "manage.py")
    subprocess.run([python, manage, "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    os.environ.update(env)
    import django

    django.setup()
    print(f"database: {database}")
    parts = set(args.parts.split(","))
    if "claims" in parts:
        claims(args.claims)
    if "end-to-end" in parts:
        end_to_end(env, args.runs)
    if "lag" in parts:
        start_lags(env)


def lag_tasks(count: int) -> str:
    return "".join(
        f'[tasks.lag_{n}]\ncommand = ["true"]\nschedule = "* * * * *"\ntimeout = 60\n'
        "max_attempts = 1\n\n"
        for n in range(1, count + 1)
    )


def claims(count: int) -> None:
    from cronjobs.models import Task
    from cronjobs.supervisor import slots
    from cronjobs.supervisor.registry import registry
    from cronjobs.supervisor.sync import sync_task

    spec = registry.load().tasks["bench_slot"]
    task = sync_task(spec)
    Task.objects.filter(pk=task.pk).update(claimed_slot=None)
    base = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    figures: dict[str, list[float]] = {
        "find (no database)": [],
        "claim won": [],
        "claim lost": [],
        "baseline: one-row UPDATE": [],
    }
    for n in range(count):
        moment = base + dt.timedelta(minutes=n, seconds=2)
        started = time.perf_counter()
        found = slots.find(spec, moment)
        figures["find (no database)"].append(time.perf_counter() - started)
        assert found.slot is not None
        started = time.perf_counter()
        assert slots.claim(task, found.slot)
        figures["claim won"].append(time.perf_counter() - started)
        started = time.perf_counter()
        assert not slots.claim(task, found.slot)
        figures["claim lost"].append(time.perf_counter() - started)
        # What any one-row write by primary key costs here (its commit), beside the claim.
        started = time.perf_counter()
        Task.objects.filter(pk=task.pk).update(updated_at=moment)
        figures["baseline: one-row UPDATE"].append(time.perf_counter() - started)
    Task.objects.filter(pk=task.pk).update(claimed_slot=None)
    print(f"\nthe claim, in-process, {count} slots; ms")
    print(f"{'':28}{'p50':>10}{'p99':>10}{'max':>10}")
    for name, samples in figures.items():
        ms = sorted(s * 1000 for s in samples)
        print(f"{name:28}{ms[len(ms) // 2]:10.3f}{ms[int(len(ms) * 0.99)]:10.3f}{ms[-1]:10.3f}")


def end_to_end(env: dict, runs: int) -> None:
    from cronjobs.models import Task

    Task.objects.filter(name="bench_slot").update(claimed_slot=None)
    python, manage = sys.executable, str(ROOT / "manage.py")
    commands = {
        "runjob, slot-bound": [python, manage, "runjob", "bench_slot", "--trigger", "cron"],
        "runjob, no slot": [python, manage, "runjob", "bench_noop", "--trigger", "cron"],
        "crontab run --skip-checks": [
            *[python, manage, "crontab", "run", crontab_hash(JOB)],
            "--skip-checks",
        ],
    }
    base = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for n in range(runs + 2):  # the first two warm the page cache and .pyc files
        fake = (base + dt.timedelta(minutes=n, seconds=1)).strftime("@%Y-%m-%d %H:%M:%S")
        for name, argv in commands.items():
            elapsed, _ = measure(["faketime", "-f", fake, *argv], env)
            if n >= 2:
                samples[name].append(elapsed)
    wall = {name: statistics.median(values) for name, values in samples.items()}
    print(f"\nend to end under faketime, {runs} interleaved runs after 2 warm-ups; medians")
    for name, value in wall.items():
        print(f"{name:36}{value * 1000:10.1f} ms")
    slot, plain = wall["runjob, slot-bound"], wall["runjob, no slot"]
    print(f"{'slot-bound - no slot':36}{(slot - plain) * 1000:10.1f} ms")
    for name in ("runjob, slot-bound", "runjob, no slot"):
        ratio = wall[name] / wall["crontab run --skip-checks"]
        print(f"{name + ' / --skip-checks':36}{ratio:10.3f}")


def start_lags(env: dict) -> None:
    from cronjobs.models import Execution

    python, manage = sys.executable, str(ROOT / "manage.py")
    print("\nstart lag: tasks due in the same minute on one host, started at its first second")
    print(f"{'tasks':>6}{'p50 (s)':>10}{'p99 (s)':>10}{'max (s)':>10}{'rows':>6}")
    for count in LAG_TASKS:
        now = time.time()
        time.sleep(60 - now % 60)  # the next minute's first second, as cron starts them
        slot = dt.datetime.fromtimestamp(time.time() // 60 * 60, dt.UTC)
        processes = [
            subprocess.Popen(
                [python, manage, "runjob", f"lag_{n}", "--trigger", "cron"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for n in range(1, count + 1)
        ]
        codes = [process.wait() for process in processes]
        # From the minute they were all due, not from each row's own slot: a call that starts
        # more than a minute late belongs to the next minute's slot of a `* * * * *` task.
        starts = Execution.objects.filter(
            started_at__gte=slot, attempt=1, task__name__startswith="lag_"
        ).values_list("started_at", flat=True)
        lags = sorted((started - slot).total_seconds() for started in starts)
        if len(lags) != count or any(codes):
            print(f"{count}: {len(lags)} rows, exit codes {sorted(set(codes))}")
        if lags:
            p50, p99 = lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))]
            print(f"{count:6}{p50:10.2f}{p99:10.2f}{lags[-1]:10.2f}{len(lags):6}")


if __name__ == "__main__":
    main()
