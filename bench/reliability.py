#!/usr/bin/env python3
"""Reliability figures for the safety layer (issue 3), on MariaDB by default:

1. N `runjob` processes started at once for one task, half under another host name:
   how many ran, how many were recorded as overlap skips, how many invocations left no row.
2. Seconds from SIGKILL of a running supervisor to the takeover by another host (bounded by
   the lease TTL) and by the same host (the dead pid is noticed at once).
3. Records spooled while the database is unreachable, and replayed by the next run.

    .venv/bin/python bench/reliability.py [--concurrent 20] [--lease-ttl 10] [--spooled 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.seed_executions import create_database  # noqa: E402

DEFAULT_URL = "mysql://root:@127.0.0.1:3306/flagged_cron_bench_reliability"


class Project:
    def __init__(self, url: str, workdir: Path):
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": url,
            "LOG_DIR": str(workdir / "logs"),
        }

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, str(ROOT / "manage.py"), *args]

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.argv(*args), env={**self.env, **env}, cwd=ROOT, capture_output=True, text=True
        )

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(*args),
            env={**self.env, **env},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def query(self, expression: str) -> str:
        code = f"from cronjobs.models import Execution as E; print({expression})"
        return self.run("shell", "-v0", "-c", code).stdout.split()[-1]


def recreate_database(url: str) -> None:
    import dj_database_url
    import MySQLdb

    cfg = dj_database_url.parse(url)
    conn = MySQLdb.connect(
        host=cfg["HOST"], port=int(cfg["PORT"] or 3306), user=cfg["USER"], password=cfg["PASSWORD"]
    )
    conn.cursor().execute(f"DROP DATABASE IF EXISTS `{cfg['NAME']}`")
    conn.close()
    create_database(url)


def concurrent(project: Project, n: int) -> None:
    procs = [
        project.start(
            "runjob",
            "bench_hold",
            "--trigger",
            "cron",
            CRONJOBS_HOST="host-a" if i % 2 else "host-b",
            BENCH_EXPECTED_SKIPS=str(n - 1),
        )
        for i in range(n)
    ]
    codes = [proc.wait() for proc in procs]
    ran = project.query("E.objects.filter(task__name='bench_hold', attempt__gt=0).count()")
    skipped = project.query(
        "E.objects.filter(task__name='bench_hold', skip_reason='overlap').count()"
    )
    rows = int(project.query("E.objects.filter(task__name='bench_hold').count()"))
    print(
        f"1. concurrent: {n} started, {ran} ran, {skipped} skipped (overlap), "
        f"{n - rows} lost; exit codes {sorted(codes)}"
    )


def takeover(project: Project, ttl: int, same_host: bool) -> float:
    first = project.start(
        "runjob",
        "bench_sleep",
        CRONJOBS_HOST="host-a",
        BENCH_SLEEP="3600",
        CRONJOBS_LEASE_TTL=str(ttl),
    )
    while (
        project.query("E.objects.filter(task__name='bench_sleep', status='running').count()") == "0"
    ):
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = time.monotonic()
    host = "host-a" if same_host else "host-b"
    while (
        project.run(
            "runjob",
            "bench_sleep",
            CRONJOBS_HOST=host,
            BENCH_SLEEP="0",
            CRONJOBS_LEASE_TTL=str(ttl),
        ).returncode
        == 3
    ):
        time.sleep(0.25)
    return time.monotonic() - killed


def spool(project: Project, count: int) -> None:
    down = {"DATABASE_URL": "mysql://root:@127.0.0.1:1/unreachable"}
    failed = sum(project.run("runjob", "bench_noop", **down).returncode == 1 for _ in range(count))
    spooled = len((Path(project.env["LOG_DIR"]) / "spool.jsonl").read_text().splitlines())
    before = int(project.query("E.objects.filter(task__name='bench_noop').count()"))
    replay = project.run("runjob", "bench_noop")
    after = int(project.query("E.objects.filter(task__name='bench_noop').count()"))
    print(
        f"3. spool: {count} runs with the database unreachable exited 1 ({failed}), "
        f"{spooled} records spooled; next run replayed {after - before - 1} "
        f"({replay.stdout.splitlines()[0]}); spool left: "
        f"{len((Path(project.env['LOG_DIR']) / 'spool.jsonl').read_text().splitlines())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--lease-ttl", type=int, default=10)
    parser.add_argument("--spooled", type=int, default=30)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()
    recreate_database(args.database_url)
    project = Project(args.database_url, Path(tempfile.mkdtemp(prefix="bench-reliability-")))
    project.run("migrate", "-v0")
    concurrent(project, args.concurrent)
    other = takeover(project, args.lease_ttl, same_host=False)
    same = takeover(project, args.lease_ttl, same_host=True)
    abandoned = project.query("E.objects.filter(status='abandoned').count()")
    print(
        f"2. takeover after SIGKILL: {other:.1f} s by another host (lease TTL {args.lease_ttl} s), "
        f"{same:.1f} s by the same host; runs marked abandoned: {abandoned}"
    )
    spool(project, args.spooled)


if __name__ == "__main__":
    main()
