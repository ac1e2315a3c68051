#!/usr/bin/env python3
"""`/metrics` and `/api/status/` at 10,000 declared tasks: CPU time (time.process_time) and
wall time of the body each builds, this checkout's code beside `--against`'s, interleaved in one
process on one database, so that a shared machine's load falls on both alike.

The database is bench/ten_thousand_tasks.py's (the same generated tasks, one successful run
each at its latest slot). The older `cronjobs/views/metrics.py` and `payloads.py` are read from
git and imported beside the current ones (the rest of the code is this checkout's); the two
bodies are compared first: /metrics line for line (the older code wrote tasks in the
database's order), /api/status/ as equal JSON. Each figure is the median of `--repeat`, the
schedule caches emptied before each; authentication and middleware are left out (a few fixed
queries).

    .venv/bin/python bench/scrape_cpu.py --against 713448a [--tasks 10000] [--repeat 5]
        [--database-url mysql://root@127.0.0.1:3306/flagged_cron_bench_scrape]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ten_thousand_tasks as bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the commit to compare with")
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-scrape-cpu-"))
    setup(workdir, args.tasks, args.database_url)
    old_metrics = older(args.against, "metrics")
    old_payloads = older(args.against, "payloads")
    from cronjobs.views import metrics, payloads

    check_same(old_metrics, metrics, old_payloads, payloads)
    pairs = {
        "/metrics": (old_metrics.exposition, metrics.exposition),
        "/api/status/": (body(old_payloads), body(payloads)),
    }
    print(
        f"{args.tasks:,} tasks, {(args.database_url or 'sqlite').split(':')[0]}, median of "
        f"{args.repeat}, CPU / wall ms: {args.against} (before) vs this checkout (after)"
    )
    for name, (before, after) in pairs.items():
        figures = {"before": ([], []), "after": ([], [])}
        for _ in range(args.repeat):
            for label, work in (("before", before), ("after", after)):
                cpu, wall = timed(work)
                figures[label][0].append(cpu)
                figures[label][1].append(wall)
        cells = [
            f"{label} {statistics.median(cpus) * 1000:.0f} / {statistics.median(walls) * 1000:.0f}"
            for label, (cpus, walls) in figures.items()
        ]
        print(f"{name:<14}" + "   ".join(cells))


def setup(workdir: Path, tasks: int, url: str) -> None:
    tasks_file = workdir / "tasks.toml"
    tasks_file.write_text(bench.tasks_toml(tasks))
    url = url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="flagged_cron_project.settings",
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench-only-secret-" + "x" * 50),
        DATABASE_URL=url,
        LOG_DIR=str(workdir / "logs"),
        CRONJOBS_TASKS_FILE=str(tasks_file),
        TIME_ZONE="UTC",
        TZ="UTC",
    )
    if url.startswith("mysql"):
        bench.fresh_mariadb(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    bench.seed_history()


def older(commit: str, name: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{commit}:cronjobs/views/{name}.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"before_{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"before_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def body(payloads: ModuleType) -> Callable[[], str]:
    from django.core.serializers.json import DjangoJSONEncoder

    return lambda: json.dumps(payloads.status_payload(), cls=DjangoJSONEncoder, ensure_ascii=False)


def check_same(old_metrics, metrics, old_payloads, payloads) -> None:
    import time_machine

    with time_machine.travel(time.time(), tick=False):
        before, after = old_metrics.exposition(), metrics.exposition()
        assert sorted(before.splitlines()) == sorted(after.splitlines()), "/metrics differs"
        assert old_payloads.status_payload() == payloads.status_payload(), "/api/status/ differs"


def timed(work: Callable[[], object]) -> tuple[float, float]:
    bench.clear_caches()
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.process_time() - cpu, time.perf_counter() - wall


if __name__ == "__main__":
    main()
