#!/usr/bin/env python3
"""What the schedule helpers and the crontab banner cost per call: the admin task list calls
`describe` and `next_run` once per task, the watchdog `previous_run` once per task every five
minutes, and the admin banner `crontab_status()` once per page (it runs `crontab -l`).

Each figure is the median of --repeat timings of --number calls, in microseconds per call,
in Pacific/Auckland (the business zone). crontab_status() only reads the crontab.

    .venv/bin/python bench/schedules.py [--number 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import timeit
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
SEED = ("5 7 * * *", "*/30 * * * *", "0 2 * * *", "0 */6 * * *", "0 * * * *")


def per_call_us(call, number: int, repeat: int) -> float:
    times = timeit.repeat(call, number=number, repeat=repeat)
    return statistics.median(times) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flagged_cron_project.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-" + "x" * 50)
    os.environ["TIME_ZONE"] = "Pacific/Auckland"
    import django

    django.setup()
    from cronjobs.schedules import describe, next_run, next_runs, previous_run
    from cronjobs.supervisor.crontab import crontab_status

    # The night the clocks go back: the slowest case, a wildcard job over the repeated hour.
    fold = datetime(2026, 4, 5, 1, 0, tzinfo=ZoneInfo("Pacific/Auckland"))
    print(f"{'call':<44} us/call")
    for expr in SEED:
        for name, call in (
            (f"next_run({expr!r})", lambda e=expr: next_run(e)),
            (f"next_runs({expr!r}, 10, April fold)", lambda e=expr: next_runs(e, 10, fold)),
            (f"previous_run({expr!r})", lambda e=expr: previous_run(e)),
            (f"describe({expr!r})", lambda e=expr: describe(e)),
        ):
            print(f"{name:<44} {per_call_us(call, args.number, args.repeat):8.1f}")
    banner = per_call_us(crontab_status, max(1, args.number // 10), args.repeat)
    print(f"{'crontab_status() (runs crontab -l)':<44} {banner:8.1f}")


if __name__ == "__main__":
    main()
