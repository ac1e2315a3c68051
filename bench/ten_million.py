#!/usr/bin/env python3
"""Ten million attempts (issue 16): pages, API and /metrics on 10,000,000 executions over 100
tasks and 400 days in MariaDB, then `prune_history` under load from four `runjob` loops.

    .venv/bin/python bench/ten_million.py [--rows 10000000] [--tasks 100] [--days 400]
        [--skip-seed] [--only pages|prune] [--repeat 5] [--buffer-pool-mb 1024]
        [--statement-limit 60] [--baseline-seconds 20] [--batch-size N] [--pause MS]
        [--url mysql://root:@127.0.0.1:3306/flagged_cron_bench10m]

1. Seed (bench/seed_executions.py, LOAD DATA) unless the database holds --rows already or
   --skip-seed; then `cronjobs.history.rebuild()` (`cronjobs.reporting.rollups.rebuild()` at
   older commits), when that function exists, after a seed or while the rollup table is empty.
   When the newest row is over an hour old (a database seeded days ago), rows for the gap are
   added at the seeded rate, so 24-hour windows hold what a live system's would; the rollups
   of the gap are rebuilt.
2. Pages: server time through Django's test Client in this process, as a superuser or with a
   read-only token; the median of --repeat requests after one warm-up, and for the task list
   and dashboard also with the cache emptied before each request; SQL queries per request.
3. Prune under load, on a copy of the database (`<name>_prune`, made afresh each time by
   INSERT ... SELECT), so the seeded one stays whole for the next run: four loops of
   `manage.py runjob bench_noop_<n>` (real processes, bench/settings.py) run beside
   `manage.py prune_history`, first deleting the oldest tenth of the rows (1,000,000 of ten
   million), then the next half (5,000,000). Each runner logs the time of its own writes
   (bench/noopapp/writelog.py); the table shows the slowest, without and with the prune
   running, against the 1 s target, and the prune's rows per second.

The buffer pool is set to --buffer-pool-mb for the run (SET GLOBAL; 0 leaves it alone) and put
back afterwards. Figures only: nothing here is a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import logging
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import seed_executions
from bench.seed_executions import ROOT, create_database, seed, setup_django

BENCH_URL = "mysql://root:@127.0.0.1:3306/flagged_cron_bench10m"
RUNNERS = 4
PRUNE_ROUNDS = (0.1, 0.5)  # shares of the seeded rows each round deletes, oldest first
RUNNER_TARGET = 1.0  # seconds, the slowest insert or finalise of a runner
COPIED_TABLES = (
    "cronjobs_task",
    "cronjobs_execution",
    "cronjobs_rollup",
    "cronjobs_outcometally",
    "cronjobs_tallymark",
)


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def header() -> None:
    """Date, commit and command: what a figure in docs/benchmarks.md must carry."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(f"{dt.datetime.now():%Y-%m-%d %H:%M} at {commit or '?'}: {' '.join(sys.argv)}")
    print(f"{os.cpu_count()} cores, {load()}")


# -- the server --------------------------------------------------------------------------------


def connect(url: str, database: str | None = None):
    import dj_database_url
    import MySQLdb

    cfg = dj_database_url.parse(url)
    return MySQLdb.connect(
        host=cfg["HOST"] or "127.0.0.1",
        port=int(cfg["PORT"] or 3306),
        user=cfg["USER"],
        password=cfg["PASSWORD"],
        database=database if database is not None else cfg["NAME"],
        charset="utf8mb4",
        autocommit=True,
    )


def query(conn, sql: str, params: tuple = ()) -> list[tuple]:
    cursor = conn.cursor()
    cursor.execute(sql, params)
    return list(cursor.fetchall())


def set_buffer_pool(url: str, megabytes: int) -> int:
    """Resize InnoDB's buffer pool (dynamic since 10.2; resized in the background, waited for
    here) and return the size it had."""
    conn = connect(url, database="")
    before = int(query(conn, "SELECT @@innodb_buffer_pool_size")[0][0])
    if megabytes and megabytes * 2**20 != before:
        query(conn, f"SET GLOBAL innodb_buffer_pool_size = {megabytes * 2**20}")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = query(conn, "SHOW STATUS LIKE 'Innodb_buffer_pool_resize_status'")
            if not status or not status[0][1] or "Completed" in status[0][1]:
                break
            time.sleep(0.5)
    now = int(query(conn, "SELECT @@innodb_buffer_pool_size")[0][0])
    conn.close()
    print(f"innodb_buffer_pool_size: {now / 2**20:,.0f} MiB (was {before / 2**20:,.0f} MiB)")
    return before


# -- 1. seed -----------------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> int:
    """Seed (or, with --skip-seed, only migrate), rebuild the rollups if there are none, and
    top up to now; returns the number of executions."""
    from cronjobs.models import Rollup

    present = seed(0 if args.skip_seed else args.rows, args.tasks, args.days, method="load")
    if not Rollup.objects.exists():  # seed() empties the table when it fills the history
        rebuild_rollups(None)
    return present + top_up(args)


def rebuild_rollups(since: dt.datetime | None) -> None:
    rebuild = _rebuild_function()
    if rebuild is None:
        print("rollups: skipped, cronjobs.history.rebuild() does not exist yet")
        return
    began = time.monotonic()
    written = rebuild(since=since)
    what = f"since {since:%Y-%m-%d %H:%M}" if since else "all"
    print(f"rollups: rebuild ({what}) wrote {written:,} in {time.monotonic() - began:.1f} s")


def _rebuild_function() -> Callable[..., int] | None:
    """The rollups' rebuild: in cronjobs.history, or in cronjobs.reporting.rollups at commits
    before it moved there; none before the rollups (this bench is run at older commits too)."""
    for module in ("cronjobs.history", "cronjobs.reporting.rollups"):
        try:
            rebuild = getattr(importlib.import_module(module), "rebuild", None)
        except ImportError:
            continue
        if rebuild is not None:
            return rebuild
    return None


def top_up(args: argparse.Namespace) -> int:
    """Rows from the newest one to now at the seeded rate (rows per day): pages and windows
    are measured on a history that reaches the present, however long ago it was seeded."""
    from django.db.models import Max

    from cronjobs.models import Execution

    newest = Execution.objects.filter(host="bench").aggregate(last=Max("started_at"))["last"]
    if newest is None:
        return 0
    gap = time.time() - newest.timestamp()
    if gap < 3600:
        return 0
    count = int(args.rows / args.days * gap / 86400)
    tasks = seed_executions.make_tasks(args.tasks)
    last_id = Execution.objects.aggregate(last=Max("id"))["last"]
    began = time.monotonic()
    seed_executions.insert_rows(
        seed_executions.rows(count, tasks, gap / 86400, random.Random(last_id), first=last_id)
    )
    print(
        f"top-up: the newest row was {gap / 86400:.1f} days old; added {count:,} rows up to now "
        f"in {time.monotonic() - began:.1f} s"
    )
    rebuild_rollups(newest)
    return count


# -- 2. pages ----------------------------------------------------------------------------------


def page_list() -> list[tuple[str, str, float, bool, str]]:
    """(name, url, target seconds, cold cache, who): bench/admin.py's pages where they are the
    same, plus two searches that match nothing, and bench/api.py's endpoints."""
    from django.urls import reverse

    from bench.admin import pages

    admin = pages()
    history = reverse("admin:cronjobs_execution_changelist")
    return [
        ("execution changelist, first page", admin["history, first page"], 0.5, False, "admin"),
        ("  filter: one task", admin["filter: task"], 0.5, False, "admin"),
        (
            "  filter: timed out, last 7 days",
            admin["filter: last 7 days + timed out"],
            0.5,
            False,
            "admin",
        ),
        ("  search miss: host-like", f"{history}?q=app-server-17.internal", 0.5, False, "admin"),
        (
            "  search miss: error text",
            f"{history}?q=connection+refused+by+upstream",
            0.5,
            False,
            "admin",
        ),
        ("task list", admin["task list"], 0.3, False, "admin"),
        ("task list, cold cache", admin["task list"], 1.0, True, "admin"),
        ("dashboard", admin["dashboard"], 0.3, False, "admin"),
        ("dashboard, cold cache", admin["dashboard"], 1.0, True, "admin"),
        ("/api/metrics/?hours=24", "/api/metrics/?hours=24", 0.1, False, "token"),
        ("/api/metrics/?hours=720", "/api/metrics/?hours=720", 0.3, False, "token"),
        ("/api/status/", "/api/status/", 0.1, False, "token"),
        ("/metrics (Prometheus)", "/metrics", 0.2, False, "token"),
    ]


class TooSlow(Exception):
    """A request whose SQL ran past --statement-limit; the message is that statement."""


def limit_statements(seconds: int) -> None:
    """MariaDB's max_statement_time on this process's connections: a page whose plan walks
    ten million rows fails after `seconds` instead of holding the run for many minutes."""
    from django.db import connection
    from django.db.backends.signals import connection_created

    def limit(sender, connection, **kwargs) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"SET SESSION max_statement_time = {seconds}")

    connection_created.connect(limit, weak=False)
    connection.close()  # the next query connects again, with the limit


def get(client, url: str) -> int:
    """One request; the number of its SQL queries, or TooSlow naming the statement that hit
    the limit."""
    from django.db import OperationalError, connection

    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        try:
            response = client.get(url)
        except OperationalError as exc:
            if "max_statement_time" not in str(exc):
                raise
            raise TooSlow(statements[-1]) from None
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return len(statements)


def measure(client, url: str, repeat: int, cold: bool) -> tuple[list[float], int]:
    """Seconds of `repeat` requests after one warm-up, and the queries of one more; `cold`
    empties the cache (the dashboard's rendered content) before each."""
    from django.core.cache import cache

    get(client, url)
    times = []
    for _ in range(repeat):
        if cold:
            cache.clear()
        began = time.perf_counter()
        get(client, url)
        times.append(time.perf_counter() - began)
    if cold:
        cache.clear()
    return times, get(client, url)


def time_pages(repeat: int, rows: int, statement_limit: int) -> None:
    from django.core.management import call_command
    from django.test import Client

    from bench.admin import client as admin_client
    from cronjobs import tokens
    from cronjobs.models import ApiToken

    call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG is off: the manifest
    ApiToken.objects.filter(name="bench-10m").delete()
    _, secret = tokens.create_token("bench-10m", read_only=True, from_command_line=True)
    clients = {
        "admin": admin_client(),
        "token": Client(headers={"authorization": f"Bearer {secret}"}),
    }
    limit_statements(statement_limit)
    # A page over the limit is reported in the table, not as a traceback from the request log.
    logging.getLogger("django.request").setLevel(logging.CRITICAL)
    print(f"\npages: {rows:,} executions; median of {repeat} requests after one warm-up; {load()}")
    print(f"{'page':<36} {'median':>8} {'min':>8} {'max':>8} {'queries':>8}  target")
    slow = []
    for name, url, target, cold, who in page_list():
        try:
            times, queries = measure(clients[who], url, repeat, cold)
        except TooSlow as exc:
            slow.append((name, str(exc)))
            print(
                f"{name:<36} {'> ' + str(statement_limit) + ' s':>8} (a statement hit the "
                f"limit)  < {target * 1000:.0f} ms MISSED"
            )
            continue
        median = statistics.median(times)
        verdict = "met" if median < target else "MISSED"
        print(
            f"{name:<36} {median * 1000:6.0f}ms {min(times) * 1000:6.0f}ms "
            f"{max(times) * 1000:6.0f}ms {queries:8d}  < {target * 1000:.0f} ms {verdict}"
        )
    for name, sql in slow:
        print(f"over the limit on {name.strip()}: {sql[:160]} ... {sql[-160:]}")


# -- 3. prune under load -----------------------------------------------------------------------


def copy_database(url: str) -> str:
    """`<name>_prune`: migrated afresh under bench/settings.py, then the history tables copied
    row for row (ids kept) with INSERT ... SELECT. Returns its URL."""
    source = url.rsplit("/", 1)[1]
    target_url = f"{url}_prune"
    target = f"{source}_prune"
    conn = connect(url, database="")
    query(conn, f"DROP DATABASE IF EXISTS `{target}`")
    create_database(target_url)
    began = time.monotonic()
    manage(["migrate", "-v0"], target_url, settings="bench.settings")
    query(conn, "SET SESSION foreign_key_checks = 0, unique_checks = 0")
    for table in COPIED_TABLES:
        columns = ", ".join(
            f"`{name}`"
            for (name,) in query(
                conn,
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s ORDER BY ordinal_position",
                (target, table),
            )
        )
        query(conn, f"DELETE FROM `{target}`.`{table}`")
        query(
            conn,
            f"INSERT INTO `{target}`.`{table}` ({columns}) "
            f"SELECT {columns} FROM `{source}`.`{table}`",
        )
    query(conn, f"ANALYZE TABLE `{target}`.`cronjobs_execution`")
    conn.close()
    print(f"\nprune: copied {source} to {target} in {time.monotonic() - began:.0f} s")
    return target_url


def manage(argv: list[str], url: str, settings: str, **popen) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": settings,
        "LOG_DIR": os.environ["BENCH_LOG_DIR"],
        **popen.pop("env", {}),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *argv],
        cwd=ROOT,
        env=env,
        check=popen.pop("check", True),
        **popen,
    )


class Runners:
    """RUNNERS loops of `runjob bench_noop_<n>`, each a fresh process, as cron would start
    them. Each run's writes are timed into the log file of the phase it started in."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.log: Path | None = None
        self.walls: dict[Path, list[float]] = {}
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.loop, args=(n,)) for n in range(1, RUNNERS + 1)
        ]

    def phase(self, log: Path) -> None:
        self.log = log
        self.walls[log] = []

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def loop(self, n: int) -> None:
        while not self.stop.is_set():
            log = self.log
            began = time.perf_counter()
            done = manage(
                ["runjob", f"bench_noop_{n}", "--trigger", "cron"],
                self.url,
                settings="bench.settings",
                env={"BENCH_WRITE_LOG": str(log)},
                check=False,
                capture_output=True,
                text=True,
            )
            self.walls[log].append(time.perf_counter() - began)
            if done.returncode != 0:
                self.failures.append(f"exit {done.returncode}: {done.stderr.strip()[-300:]}")


def write_times(log: Path) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            kind, seconds = line.split()
            times.setdefault(kind, []).append(float(seconds))
    return times


def rounds_days(url: str, rows: int) -> list[tuple[int, int]]:
    """(rows meant, --days) per round: the age, in whole days, of the row that many rows into
    the history by start time (read along the started_at index; ids have gaps, LOAD DATA
    reserves them in blocks)."""
    conn = connect(url)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    plan, upto = [], 0
    for share in PRUNE_ROUNDS:
        upto += int(rows * share)
        ((started,),) = query(
            conn,
            "SELECT started_at FROM cronjobs_execution ORDER BY started_at LIMIT 1 OFFSET %s",
            (upto,),
        )
        plan.append((int(rows * share), max(1, round((now - started) / dt.timedelta(days=1)))))
    conn.close()
    return plan


def prune_under_load(url: str, days: int, args: argparse.Namespace, workdir: Path) -> None:
    before = counts(url)
    runners = Runners(url)
    idle, busy = workdir / f"idle-{days}.log", workdir / f"prune-{days}.log"
    runners.phase(idle)
    runners.start()
    time.sleep(args.baseline_seconds)
    runners.phase(busy)
    argv = ["prune_history", "--days", str(days)]
    if args.batch_size:
        argv += ["--batch-size", str(args.batch_size)]
    if args.pause is not None:
        argv += ["--pause", str(args.pause)]
    print(f"\n$ manage.py {' '.join(argv)}   (four runjob loops beside it; {load()})")
    began = time.perf_counter()
    done = manage(
        argv, url, settings="flagged_cron_project.settings", capture_output=True, text=True
    )
    elapsed = time.perf_counter() - began
    runners.finish()
    for line in done.stdout.splitlines():
        print(f"  | {line}")
    deleted = int(re.search(r"deleted (\d+) execution", done.stdout).group(1))
    after = counts(url)
    print(
        f"prune: {deleted:,} executions deleted in {elapsed:.1f} s, {deleted / elapsed:,.0f} "
        f"rows/s (whole process); rollups {before['rollups']:,} before, {after['rollups']:,} after"
    )
    report_runners(runners, idle, busy)


def counts(url: str) -> dict[str, int]:
    conn = connect(url)
    rollups = query(conn, "SELECT COUNT(*) FROM cronjobs_rollup")[0][0]
    conn.close()
    return {"rollups": rollups}


def report_runners(runners: Runners, idle: Path, busy: Path) -> None:
    print(f"runners ({RUNNERS} runjob loops): per kind of write, the slowest / p99 (count)")
    kinds = ("insert", "finalise", "rollup", "commit")
    print(f"{'':<14} {'runs':>5} {'runjob p50':>10}" + "".join(f"{k:>22}" for k in kinds))
    for label, log in (("without prune", idle), ("during prune", busy)):
        times, walls = write_times(log), runners.walls[log]
        cells = "".join(f"{_spread(times.get(kind, [])):>22}" for kind in kinds)
        wall = f"{statistics.median(walls) * 1000:.0f} ms" if walls else "-"
        print(f"{label:<14} {len(walls):5d} {wall:>10}{cells}")
    busy_times = write_times(busy)
    worst = max([0.0, *busy_times.get("insert", []), *busy_times.get("finalise", [])])
    verdict = "met" if worst < RUNNER_TARGET else "MISSED"
    print(
        f"slowest insert or finalise during the prune: {worst * 1000:.0f} ms "
        f"(target < {RUNNER_TARGET * 1000:.0f} ms) {verdict}"
    )
    rollup = busy_times.get("rollup")
    if rollup:
        print(f"rollup writes: median {statistics.median(rollup) * 1000:.1f} ms each")
    else:
        print("rollup writes: none seen (the runner does not write rollups yet)")
    if runners.failures:
        print(f"runjob failures: {len(runners.failures)}; first: {runners.failures[0]}")


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{max(values) * 1000:.0f} / {_p99(values) * 1000:.0f} ms ({len(values)})"


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.99) - 1)]


def prune_phase(args: argparse.Namespace, rows: int) -> None:
    target = copy_database(args.url)
    plan = rounds_days(target, rows)
    with tempfile.TemporaryDirectory(prefix="bench-10m-") as workdir:
        for meant, days in plan:
            print(f"\nround: about {meant:,} rows, older than {days} days")
            prune_under_load(target, days, args, Path(workdir))
    conn = connect(args.url, database="")
    query(conn, f"DROP DATABASE `{target.rsplit('/', 1)[1]}`")  # a copy is made afresh each run
    conn.close()


# ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--only", choices=("pages", "prune"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--buffer-pool-mb", type=int, default=1024)
    parser.add_argument("--statement-limit", type=int, default=60, help="seconds per SQL statement")
    parser.add_argument("--baseline-seconds", type=float, default=20)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--pause", type=int, default=None, help="ms; prune_history's default")
    parser.add_argument("--url", default=BENCH_URL)
    args = parser.parse_args()
    logs = tempfile.mkdtemp(prefix="bench-10m-logs-")
    os.environ.setdefault("BENCH_LOG_DIR", logs)
    os.environ["LOG_DIR"] = logs  # this process's own log lines, if any
    header()
    # A kill runs the `finally` below too, which puts the buffer pool back.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    create_database(args.url)
    pool_before = set_buffer_pool(args.url, args.buffer_pool_mb)
    try:
        setup_django(args.url)
        rows = prepare(args)
        if args.only != "prune":
            time_pages(args.repeat, rows, args.statement_limit)
        if args.only != "pages":
            prune_phase(args, rows)
    finally:
        if args.buffer_pool_mb:
            set_buffer_pool(args.url, pool_before // 2**20)


if __name__ == "__main__":
    main()
