#!/usr/bin/env python3
"""Fill a MariaDB database with a realistic execution history for benchmarks.

    .venv/bin/python bench/seed_executions.py [--rows 1000000] [--tasks 20] [--days 90]
                                              [--method insert|load]
                                              [--url mysql://root:@127.0.0.1:3306/flagged_cron_bench]

Creates the database if needed, migrates it, adds `--tasks` tasks and `--rows` execution rows
spread over the last `--days` days (in time order, as a live system inserts them), and skips the
fill when the table already holds that many rows. Other benchmarks reuse it:

    from bench.seed_executions import setup_django, seed
    setup_django()          # before importing models
    seed(rows=1_000_000)

Rows go in with multi-row INSERTs (MySQLdb's executemany batches the VALUES), 10,000 a
statement; a million rows take about a minute on a small machine. `--method load` writes them
as tab-separated files of CHUNK rows instead and loads each with LOAD DATA LOCAL INFILE while
the next is written, for tens of millions (bench/ten_million.py).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import queue
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_URL = "mysql://root:@127.0.0.1:3306/flagged_cron_bench"
BATCH = 10_000
CHUNK = 500_000  # rows per LOAD DATA file

# Outcome mix of a mostly healthy estate; skips are attempt-0 rows.
STATUS_WEIGHTS = {
    "succeeded": 93.0,
    "failed": 3.0,
    "timed_out": 1.0,
    "memory_exceeded": 0.5,
    "abandoned": 0.2,
    "skipped": 2.3,
}
SKIP_REASONS = ("overlap", "circuit_open", "disabled")
COLUMNS = (
    "run_id",
    "task_id",
    "attempt",
    "trigger",
    "status",
    "skip_reason",
    "host",
    "pid",
    "started_at",
    "finished_at",
    "duration",
    "exit_code",
    "signal",
    "peak_rss_bytes",
    "cpu_user",
    "cpu_system",
    "output",
    "error",
    "traceback",
    "memory_added_bytes",
    "upstream_run_id",
    "stopped_by",
)


def setup_django(url: str = BENCH_URL) -> None:
    """Point Django at the benchmark database (created if missing) and start it."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "x" * 50)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flagged_cron_project.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
    sys.path.insert(0, str(ROOT))
    create_database(url)
    import django

    django.setup()


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
        f"CREATE DATABASE IF NOT EXISTS `{cfg['NAME']}` CHARACTER SET utf8mb4 "
        "COLLATE utf8mb4_unicode_ci"
    )
    conn.close()


def make_tasks(count: int) -> list:
    """`count` bench tasks with their own typical duration (seconds) and memory (bytes)."""
    from cronjobs.models import Task

    tasks = []
    for n in range(1, count + 1):
        task, _ = Task.objects.get_or_create(
            name=f"bench_task_{n:02d}",
            defaults={
                "kind": "callable",
                "target": "bench:job",
                "schedule": f"{n % 60} * * * *",
                "timeout": 600,
                "slow_after": 480,
                "source": "bench",
            },
        )
        task.typical = (2.0 + 3 * n, (32 + 8 * n) * 2**20)
        tasks.append(task)
    return tasks


def rows(
    count: int,
    tasks: list,
    days: float,
    rng: random.Random,
    first: int = 0,
    end: float | None = None,
) -> Iterator[tuple]:
    """Execution rows as tuples in COLUMNS order, oldest first, over the `days` before `end`
    (a Unix time; now by default). Run ids count on from `first`, so a later top-up of an
    existing fill gives new ones."""
    end = end if end is not None else time.time()
    starts = sorted(rng.uniform(end - days * 86400, end - 60) for _ in range(count))
    statuses = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()), k=count)
    for n, (start, status) in enumerate(zip(starts, statuses, strict=True), start=first):
        task = tasks[rng.randrange(len(tasks))]
        yield row(n, task, start, status, rng)


def row(n: int, task, start: float, status: str, rng: random.Random) -> tuple:
    started = dt.datetime.fromtimestamp(start, dt.UTC).replace(tzinfo=None)
    if status == "skipped":
        return (
            f"{n:032x}",
            task.id,
            0,
            "cron",
            status,
            rng.choice(SKIP_REASONS),
            "bench",
            None,
            started,
            started,
            None,
            None,
            None,
            None,
            None,
            None,
            "",
            "",
            "",
            None,
            "",
            "",
        )
    base_duration, base_memory = task.typical
    duration = 600.0 if status == "timed_out" else rng.lognormvariate(0, 0.4) * base_duration
    memory = int(base_memory * rng.uniform(0.6, 1.4)) * (3 if status == "memory_exceeded" else 1)
    finished = started + dt.timedelta(seconds=duration)
    failed = status != "succeeded"
    return (
        f"{n:032x}",
        task.id,
        1,
        "cron",
        status,
        "",
        "bench",
        1000 + n % 30000,
        started,
        finished,
        duration,
        1 if failed else 0,
        None,
        memory,
        duration * 0.7,
        duration * 0.1,
        "",
        f"{status} in bench" if failed else "",
        "",
        None,
        "",
        "",
    )


def seed(
    rows_wanted: int = 1_000_000,
    task_count: int = 20,
    days: int = 90,
    seed: int = 7,
    method: str = "insert",
) -> int:
    """Migrate and fill the database Django points at; returns the number of rows present."""
    from django.core.management import call_command
    from django.db import connection

    from cronjobs.models import Execution, Task

    call_command("migrate", verbosity=0)
    # migrate's synctasks retires every task no code declares; the bench's stand for a live
    # estate, so the dashboard and the API must see them.
    Task.objects.filter(source="bench", retired_at__isnull=False).update(retired_at=None)
    present = Execution.objects.count()
    if present >= rows_wanted:
        print(f"{present:,} executions already present; not seeding")
        return present
    tasks = make_tasks(task_count)
    began = time.monotonic()
    with connection.cursor() as cursor:
        # A partial fill starts over, and what was added up from the old rows goes with them.
        for table in ("cronjobs_execution", "cronjobs_rollup", "cronjobs_outcometally"):
            cursor.execute(f"TRUNCATE TABLE {table}")
        cursor.execute("DELETE FROM cronjobs_tallymark")
    values = rows(rows_wanted, tasks, days, random.Random(seed))
    if method == "load":
        load_rows(values, connection.settings_dict)
    else:
        insert_rows(values)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE TABLE cronjobs_execution")
    print(f"inserted {rows_wanted:,} executions in {time.monotonic() - began:.1f} s ({method})")
    return Execution.objects.count()


def insert_rows(values: Iterable[tuple]) -> None:
    """Multi-row INSERTs of BATCH rows, through Django's connection."""
    from django.db import connection

    sql = (
        f"INSERT INTO cronjobs_execution ({', '.join(f'`{c}`' for c in COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    )
    batch = []
    with connection.cursor() as cursor:
        for value in values:
            batch.append(value)
            if len(batch) == BATCH:
                cursor.executemany(sql, batch)
                batch.clear()
        if batch:
            cursor.executemany(sql, batch)


def load_rows(values: Iterable[tuple], database: dict) -> None:
    """LOAD DATA LOCAL INFILE, CHUNK rows a file: this thread writes the next file while a
    second one loads the last (mysqlclient lets go of the GIL while the server works), so
    Python and MariaDB each keep a core busy. The loading session skips unique and foreign-key
    checks: the rows are unique and their tasks exist by construction."""
    import MySQLdb

    conn = MySQLdb.connect(
        host=database["HOST"] or "127.0.0.1",
        port=int(database["PORT"] or 3306),
        user=database["USER"],
        password=database["PASSWORD"],
        database=database["NAME"],
        charset="utf8mb4",
        local_infile=1,
    )
    conn.cursor().execute("SET unique_checks = 0, foreign_key_checks = 0")
    files: queue.Queue[Path | None] = queue.Queue(maxsize=1)
    failed: list[BaseException] = []

    def load() -> None:
        while (path := files.get()) is not None:
            try:
                if not failed:
                    conn.cursor().execute(
                        f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE cronjobs_execution "
                        f"({', '.join(f'`{c}`' for c in COLUMNS)})"
                    )
                    conn.commit()
            except BaseException as exc:  # reported by the writing thread
                failed.append(exc)
            finally:
                path.unlink()

    loader = threading.Thread(target=load)
    loader.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-seed-") as workdir:
            for number, chunk in enumerate(_chunks(values, CHUNK)):
                files.put(_write_tsv(Path(workdir) / f"chunk{number}.tsv", chunk))
                if failed:
                    break
            files.put(None)
            loader.join()
    finally:
        conn.close()
    if failed:
        raise failed[0]


def _chunks(values: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_tsv(path: Path, chunk: list[tuple]) -> Path:
    """LOAD DATA's default format: tab-separated, \\N for NULL. No value the generator makes
    holds a tab, a newline or a backslash, so nothing needs escaping."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
        writer.writerows([r"\N" if v is None else v for v in value] for value in chunk)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--method", choices=("insert", "load"), default="insert")
    parser.add_argument("--url", default=BENCH_URL)
    args = parser.parse_args()
    setup_django(args.url)
    seed(args.rows, args.tasks, args.days, method=args.method)


if __name__ == "__main__":
    main()
