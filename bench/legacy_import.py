#!/usr/bin/env python3
"""`manage.py import_legacy_metrics` of a big Smart Cron V2 export into MariaDB: wall time and
peak memory (targets: 500,000 rows in under 60 s and 200 MB).

    .venv/bin/python bench/legacy_import.py [--rows 500000]
        [--url mysql://root:@127.0.0.1:3306/flagged_cron_bench_import]

Writes a V2 metrics CSV of `--rows` rows (the five jobs and two unknown tasks over 180 days,
3 % failures, as `SELECT * FROM flagged_products_cron_metrics` exports them) to a temporary
directory, empties the imported rows of an earlier run, then runs the command in a child
process and reads its peak RSS from the kernel (wait4). It then runs the command again: a
re-import must add nothing.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.seed_executions import create_database  # noqa: E402

URL = "mysql://root:@127.0.0.1:3306/flagged_cron_bench_import"
TASKS = {  # V2 name: (mean seconds, mean MiB)
    "flagged_products_generate_daily_products": (45, 128),
    "flagged_products_refresh_store_stats": (5, 32),
    "flagged_products_refresh_leaderboard": (12, 64),
    "flagged_products_check_achievements": (8, 48),
    "flagged_products_generate_ai_insights": (25, 96),
    "flagged_products_stock_sync": (30, 80),
    "nightly_backup": (120, 200),
}
HEADER = ["id", "task_name", "success", "execution_time", "memory_used", "error_message",
          "retry_count", "created_at"]  # fmt: skip


def write_file(path: Path, rows: int) -> None:
    rng = random.Random(15)
    start = dt.datetime(2026, 6, 1)
    step = dt.timedelta(days=180) / rows
    names = list(TASKS)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(rows):
            name = names[n % len(names)]
            seconds, mib = TASKS[name]
            ok = rng.random() > 0.03
            writer.writerow(
                [
                    n + 1,
                    name,
                    int(ok),
                    round(rng.uniform(0.5, 1.5) * seconds, 3),
                    int(rng.uniform(0.7, 1.3) * mib * 2**20),
                    "" if ok else "PHP Fatal error: Allowed memory size exhausted",
                    0 if ok else rng.randint(0, 2),
                    (start + step * n).strftime("%Y-%m-%d %H:%M:%S"),
                ]
            )


def manage(env: dict[str, str], *args: str) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, stdout) of one `manage.py` child process."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{out}{err}")
    return elapsed, usage.ru_maxrss / 1024, out.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--url", default=URL)
    args = parser.parse_args()
    create_database(args.url)
    env = {
        **os.environ,
        "DATABASE_URL": args.url,
        "DJANGO_SETTINGS_MODULE": "flagged_cron_project.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-" + "x" * 50),
        "DEBUG": "0",
    }
    manage(env, "migrate", "--verbosity", "0")
    clear = "DELETE FROM cronjobs_execution WHERE `trigger` = 'imported'"
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "dbshell", "--", "-e", clear],
        env=env, cwd=ROOT, check=True,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flagged_products_cron_metrics.csv"
        started = time.monotonic()
        write_file(path, args.rows)
        size = path.stat().st_size / 2**20
        print(f"wrote {args.rows:,} V2 rows ({size:.0f} MiB) in {time.monotonic() - started:.1f} s")
        seconds, peak, out = manage(env, "import_legacy_metrics", str(path))
        print(out)
        print(f"import: {seconds:.1f} s wall, peak RSS {peak:.0f} MiB (targets < 60 s, < 200 MB)")
        seconds, peak, out = manage(env, "import_legacy_metrics", str(path))
        print(out)
        print(f"re-import: {seconds:.1f} s wall, peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
