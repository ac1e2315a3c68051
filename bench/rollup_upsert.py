#!/usr/bin/env python3
"""What the rollups add to finalising an attempt (target: < 5 ms an attempt).

    .venv/bin/python bench/rollup_upsert.py [--attempts 2000]
                                            [--url mysql://root:@127.0.0.1:3306/flagged_cron_bench_upsert]

Writes `--attempts` attempts of one task the way the runner does (insert the running row,
then finalise it), once with a plain `row.save()` for the finalise and once through
`history.save(row)` (cronjobs/history.py: the compare-and-set finish and the upsert of the
hour and day rows, one transaction), alternating in blocks so both see the same database
state, and prints the median and 99th percentile of each and the difference. The database is
created if missing and its executions and rollups emptied first; each statement is
autocommitted, as in a runjob process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.seed_executions import setup_django

URL = "mysql://root:@127.0.0.1:3306/flagged_cron_bench_upsert"


def finalise_times(count: int, through_rollups: bool) -> list[float]:
    from django.utils import timezone

    from cronjobs import history
    from cronjobs.models import Execution, Task

    task = Task.objects.get(name="bench_upsert")
    times = []
    for _ in range(count):
        row = Execution(run_id=uuid.uuid4().hex, task=task, status="running")
        row.save()
        row.status, row.finished_at, row.duration = "succeeded", timezone.now(), 0.25
        row.peak_rss_bytes = 30 * 2**20
        began = time.perf_counter()
        if through_rollups:
            history.save(row)
        else:
            row.save()
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=2000)
    parser.add_argument("--url", default=URL)
    args = parser.parse_args()
    setup_django(args.url)
    from django.core.management import call_command
    from django.db import connection

    from cronjobs.models import Execution, Rollup, Task

    call_command("migrate", verbosity=0)
    Execution.objects.all().delete()
    Rollup.objects.all().delete()
    Task.objects.get_or_create(
        name="bench_upsert",
        defaults={
            "kind": "callable",
            "target": "bench:job",
            "source": "b",
            "timeout": 60,
            "slow_after": 48.0,
        },
    )
    plain: list[float] = []
    rolled: list[float] = []
    block = 100
    for _ in range(args.attempts // block):
        plain += finalise_times(block, through_rollups=False)
        rolled += finalise_times(block, through_rollups=True)
    print(f"{connection.vendor}, {args.attempts:,} attempts of each kind")
    for name, times in (("plain row.save()", plain), ("history.save(row)", rolled)):
        p99 = statistics.quantiles(times, n=100)[98]
        print(
            f"  {name:20} median {statistics.median(times) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"
        )
    added = statistics.median(rolled) - statistics.median(plain)
    print(f"  the rollups add {added * 1000:.2f} ms an attempt (median; target < 5 ms)")


if __name__ == "__main__":
    main()
