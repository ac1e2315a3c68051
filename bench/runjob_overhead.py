#!/usr/bin/env python3
"""What supervision costs: `manage.py runjob bench_noop` (child process tree, timeout, memory
sampling, lease, circuit, alerts, an Execution row and both log files) against the same no-op
function run by django-crontab's `manage.py crontab run <hash>` (no supervision, no record).

Both run as fresh processes, interleaved, on the same database; we report the median wall time
and the median peak RSS of the whole process tree (ru_maxrss from wait4, which covers every
child the process waited for) and their ratios. Target (issue 2): ratio <= 1.25.

    .venv/bin/python bench/runjob_overhead.py [--runs 15] [--database-url mysql://...]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.seed_executions import create_database  # noqa: E402

JOB = ("* * * * *", "bench.noopapp.jobs.noop")


def crontab_hash(job: tuple) -> str:
    # django-crontab's own recipe (Crontab.__hash_job): md5 of the sorted-keys JSON of the job.
    return hashlib.md5(json.JSONEncoder(sort_keys=True).encode(job).encode()).hexdigest()


def measure(argv: list[str], env: dict) -> tuple[float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[2:])} exited {proc.returncode}: {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-runjob-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        "LOG_DIR": str(workdir / "logs"),
    }
    python, manage = sys.executable, str(ROOT / "manage.py")
    if env["DATABASE_URL"].startswith("mysql"):
        create_database(env["DATABASE_URL"])
    subprocess.run([python, manage, "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    runjob = [python, manage, "runjob", "bench_noop", "--trigger", "cron"]
    crontab = [python, manage, "crontab", "run", crontab_hash(JOB)]
    # runjob skips Django's system checks (it reports declaration errors itself); measuring
    # `crontab run --skip-checks` too shows the cost of supervision alone.
    commands = {
        "runjob": runjob,
        "crontab run": crontab,
        "crontab run --skip-checks": [*crontab, "--skip-checks"],
    }
    # The MariaDB bench database is kept between runs: count this run's rows only.
    since = datetime.datetime.now(datetime.UTC).isoformat()
    for _ in range(2):  # warm the page cache and .pyc files for all
        for argv in commands.values():
            measure(argv, env)
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, argv in commands.items():
            samples[name].append(measure(argv, env))
    report(samples, env["DATABASE_URL"].split(":")[0], args.runs)
    recorded = subprocess.run(
        [
            python,
            manage,
            "shell",
            "-c",
            "from cronjobs.models import Execution as E; "
            "print(E.objects.filter(task__name='bench_noop', status='succeeded', "
            f"started_at__gte='{since}').count())",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    print(f"succeeded Execution rows recorded by runjob: {recorded} (expected {args.runs + 2})")


def report(samples: dict, database: str, runs: int) -> None:
    wall = {name: statistics.median(s[0] for s in rows) for name, rows in samples.items()}
    rss = {name: statistics.median(s[1] for s in rows) for name, rows in samples.items()}
    print(f"database: {database}; {runs} interleaved runs each after 2 warm-ups; medians")
    print(f"{'':36}{'wall (ms)':>12}{'peak RSS (MiB)':>16}")
    for name in samples:
        print(f"{name:36}{wall[name] * 1000:12.1f}{rss[name] / 2**20:16.1f}")
    for baseline in ("crontab run", "crontab run --skip-checks"):
        wall_ratio = wall["runjob"] / wall[baseline]
        rss_ratio = rss["runjob"] / rss[baseline]
        label = f"runjob / {baseline}"
        print(f"{label:36}{wall_ratio:12.3f}{rss_ratio:16.3f}   (target <= 1.25)")


if __name__ == "__main__":
    main()
