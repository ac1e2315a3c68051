#!/usr/bin/env python3
"""The five Flagged Products jobs at full scale, each run as `manage.py runjob <job>` in a real
child process against MariaDB, next to the old PHP system's figures (issue 5's targets: 15x
faster than the seed's time, and under the seed's memory).

    .venv/bin/python bench/flagged_jobs.py [--repeat 3] [--reseed]
                      [--url mysql://root:@127.0.0.1:3306/flagged_cron_bench_domain]

1. Creates and migrates the database, then seeds it with
   `seed_demo --outlets 20 --products 8000 --staff 150 --days 90 --seed 42` unless it is
   already seeded (`--reseed` flushes and seeds again, and times the seed).
2. Before each run, resets what the job would otherwise find done (today's flags, awards,
   insights) so every run does the full work.
3. Runs each job `--repeat` times and prints the median of:
   wall      wall time of the whole `runjob` process: interpreter and Django start-up,
             supervision and recording included
   attempt   the supervised attempt as recorded in its Execution row (fork to exit): what the
             old wrapper measured, and what the 15x target is checked against
   job       the job's own time, as printed by the job
   rss max   the largest single process (wait4's ru_maxrss of `runjob`, covering every
             descendant reaped), i.e. Python + Django + the job
   rss tree  the Execution row's peak_rss_bytes: keeper + worker summed (shared pages count
             twice, so it overstates)
   added     memory the job added to its worker process (peak minus the RSS it was forked
             with): comparable to the old figures, which were PHP's own allocations without
             the interpreter; the memory target is checked against it
   queries   SQL statements the job issued (a Django execute_wrapper from bench/querycount, an
             app installed for the benchmark only; the supervisor's own bookkeeping is not
             counted)
   generate_ai_insights is measured twice: rule-based (no key) and against a local
   OpenAI-compatible stand-in on 127.0.0.1 that answers at once.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_URL = "mysql://root:@127.0.0.1:3306/flagged_cron_bench_domain"
SEED_ARGS = ["--outlets", "20", "--products", "8000", "--staff", "150", "--days", "90"]
SPEEDUP = 15
# The old system's figures (seconds, MiB), from the design's seed document.
SEED_FIGURES = {
    "generate_daily_products": (45, 128),
    "refresh_store_stats": (5, 32),
    "refresh_leaderboard": (12, 64),
    "check_achievements": (8, 48),
    "generate_ai_insights": (25, 96),
}
JOBS = [
    ("generate_daily_products", "generate_daily_products", {}),
    ("refresh_store_stats", "refresh_store_stats", {}),
    ("refresh_leaderboard", "refresh_leaderboard", {}),
    ("check_achievements", "check_achievements", {}),
    ("generate_ai_insights", "generate_ai_insights (rules)", {}),
    ("generate_ai_insights", "generate_ai_insights (stand-in API)", {"OPENAI_API_KEY": "sk-b"}),
]
MIB = 1024 * 1024


def child_env(url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="flagged_cron_project.settings",
        SECRET_KEY=env.get("SECRET_KEY", "bench-only-" + "x" * 50),
        DEBUG="0",  # DEBUG keeps every query in memory: not what production runs
        EXTRA_APPS="demo,bench.querycount",  # seed_demo, and the jobs' query counts
        LOG_DIR=str(ROOT / "bench" / "results" / "logs"),
    )
    env.update(extra or {})
    return env


def manage(url: str, *args: str, extra: dict[str, str] | None = None) -> tuple[str, float, int]:
    """Run manage.py; returns (stdout, wall seconds, max RSS in bytes of its process tree)."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=child_env(url, extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"manage.py {' '.join(args)} exited {proc.returncode}:\n{out}")
    return out, wall, usage.ru_maxrss * 1024


def create_database(url: str) -> None:
    import dj_database_url
    import MySQLdb

    cfg = dj_database_url.parse(url)
    conn = MySQLdb.connect(
        host=cfg["HOST"] or "127.0.0.1",
        port=int(cfg["PORT"] or 3306),
        user=cfg["USER"],
        password=cfg["PASSWORD"],
    )
    conn.cursor().execute(
        f"CREATE DATABASE IF NOT EXISTS `{cfg['NAME']}` "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    conn.close()


def setup(url: str) -> None:
    os.environ.update(child_env(url))
    create_database(url)
    import django

    django.setup()


def seed(url: str, reseed: bool) -> str:
    manage(url, "migrate", "--no-input", "-v0")
    flag = "--flush" if reseed else "--if-empty"
    out, wall, rss = manage(url, "seed_demo", *SEED_ARGS, "--seed", "42", flag)
    print(out.rstrip())
    return f"seed_demo: {wall:.1f} s wall, max RSS {rss / MIB:.0f} MiB"


def reset(job: str) -> None:
    """Undo what a previous run left, so the next run does the whole job again."""
    from django.utils import timezone

    from flagged_products.models import FlaggedProduct, Insight, StaffAchievement

    if job == "generate_daily_products":
        FlaggedProduct.objects.filter(flag_date=timezone.localdate()).delete()
    elif job == "check_achievements":
        StaffAchievement.objects.all().delete()
    elif job == "generate_ai_insights":
        Insight.objects.all().delete()


def run_once(url: str, job: str, extra: dict[str, str]) -> dict[str, float]:
    from cronjobs.models import Execution

    reset(job)
    out, wall, max_rss = manage(url, "runjob", job, extra=extra)
    run_id = re.search(r"\(run ([0-9a-f]{32})\)", out).group(1)
    row = Execution.objects.get(run_id=run_id, attempt=1)
    if row.status != "succeeded":
        raise SystemExit(f"{job} {row.status}: {row.error}\n{row.output}")
    figures = dict(re.findall(r"(queries|seconds|added_mib)=([0-9.-]+)", row.output))
    return {
        "wall": wall,
        "attempt": row.duration,
        "job": float(figures["seconds"]),
        "rss_max": max_rss / MIB,
        "rss_tree": row.peak_rss_bytes / MIB,
        "added": float(figures["added_mib"]),
        "queries": int(figures["queries"]),
    }


def measure(url: str, repeat: int) -> list[tuple[str, str, dict[str, float]]]:
    from tests.openai_standin import OpenAIStandIn

    results = []
    with OpenAIStandIn() as api:
        for job, label, extra in JOBS:
            if extra:
                extra = {**extra, "OPENAI_BASE_URL": api.base_url, "OPENAI_MODEL": "stand-in"}
            runs = [run_once(url, job, extra) for _ in range(repeat)]
            median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            results.append((job, label, median))
    return results


def report(results: list[tuple[str, str, dict[str, float]]], seed_line: str) -> None:
    print(seed_line)
    head = (
        f"{'job':<36} {'wall s':>6} {'attempt':>7} {'job s':>6} {'rss max':>7} "
        f"{'tree':>6} {'added':>6} {'queries':>7} {'seed s/MB':>9} {'target':>6} "
        f"{'speed-up':>8}  verdict"
    )
    print(head)
    print("-" * len(head))
    for job, label, m in results:
        seed_s, seed_mb = SEED_FIGURES[job]
        target = seed_s / SPEEDUP
        ok = m["attempt"] <= target and m["added"] < seed_mb
        print(
            f"{label:<36} {m['wall']:>6.2f} {m['attempt']:>7.3f} {m['job']:>6.3f} "
            f"{m['rss_max']:>4.0f} MB {m['rss_tree']:>3.0f} MB {m['added']:>3.0f} MB "
            f"{m['queries']:>7.0f} {seed_s:>4}/{seed_mb:>3} {target:>5.2f}s "
            f"{seed_s / m['attempt']:>7.0f}x  {'meets target' if ok else 'MISSES'}"
        )
    print("sizes in MiB; speed-up = seed time / attempt; memory target checked on 'added'")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=BENCH_URL)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reseed", action="store_true", help="flush and seed again (timed)")
    args = parser.parse_args()
    setup(args.url)
    seed_line = seed(args.url, args.reseed)
    report(measure(args.url, args.repeat), seed_line)


if __name__ == "__main__":
    main()
