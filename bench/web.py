#!/usr/bin/env python3
"""The web host under load: gunicorn (gunicorn.conf.py, the documented worker count) on
1,000,000 executions in MariaDB, 32 concurrent loopback clients for a bounded time.

    .venv/bin/python bench/web.py [--clients 32] [--seconds 60]
                                  [--url mysql://root:@127.0.0.1:3306/flagged_cron_bench]

Uses bench/seed_executions.py's database (seeded on first use). Each client loops over
`/api/status/`, `/api/metrics/?hours=24` (with a read-only token of a superuser), the execution
changelist and the dashboard (with a superuser's session) until the time is up. Prints
requests served, p50/p95/p99 latency, errors (any status but 200, or a connection error), and
the peak resident memory of gunicorn's master and workers together, sampled every 0.2 s.
Targets (issue 12): 0 errors, p95 under 500 ms.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.seed_executions import BENCH_URL, ROOT, seed, setup_django

PATHS = [
    "/api/status/",
    "/api/metrics/?hours=24",
    "/admin/cronjobs/execution/",
    "/admin/dashboard/",
]


def credentials() -> tuple[dict, dict]:
    """Headers for the API (a read-only token) and the admin (a superuser's session)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from cronjobs import tokens
    from cronjobs.models import ApiToken

    user, _ = get_user_model().objects.get_or_create(
        username="bench_admin", defaults={"is_staff": True, "is_superuser": True}
    )
    ApiToken.objects.filter(name="bench-web").delete()
    _, secret = tokens.create_token("bench-web", read_only=True, created_by=user)
    client = Client()
    client.force_login(user)
    return {"Authorization": f"Bearer {secret}"}, {
        "Cookie": f"sessionid={client.cookies['sessionid'].value}"
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str, headers: dict) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def tree_rss(pid: int) -> int:
    import psutil

    try:
        parent = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0


def cpu_seconds(processes: list) -> float:
    """User plus system CPU time of these processes so far (0 for one that is gone)."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except Exception:  # psutil.NoSuchProcess, AccessDenied
            continue
        total += times.user + times.system
    return total


def database_processes() -> list:
    import psutil

    return [p for p in psutil.process_iter(["name"]) if p.info["name"] in {"mariadbd", "mysqld"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--url", default=BENCH_URL)
    args = parser.parse_args()
    setup_django(args.url)
    seed()
    api, admin = credentials()
    from django.core.management import call_command

    call_command("collectstatic", "--noinput", verbosity=0)
    port = free_port()
    env = {**os.environ, "WEB_ACCESS_LOG": "", "ALLOWED_HOSTS": "127.0.0.1"}
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "--config",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    while fetch(f"{base}/api/status/", api) == 0:
        time.sleep(0.2)
    latencies: list[float] = []
    by_path: dict[str, list[float]] = {path: [] for path in PATHS}
    errors: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def client(n: int) -> None:
        i = n
        while time.monotonic() < deadline:
            path = PATHS[i % len(PATHS)]
            i += 1
            began = time.monotonic()
            status = fetch(base + path, api if path.startswith("/api/") else admin)
            with lock:
                latencies.append(time.monotonic() - began)
                by_path[path].append(latencies[-1])
                if status != 200:
                    errors.append(status)

    import psutil

    peak = 0
    web = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    database = database_processes()
    machine_before = psutil.cpu_times()
    web_before, database_before = cpu_seconds(web), cpu_seconds(database)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, tree_rss(server.pid))
        time.sleep(0.2)
    web_cpu = cpu_seconds(web) - web_before
    database_cpu = cpu_seconds(database) - database_before
    machine_after = psutil.cpu_times()
    busy = sum(machine_after) - sum(machine_before)
    idle = (machine_after.idle + machine_after.iowait) - (
        machine_before.idle + machine_before.iowait
    )
    others = busy - idle - web_cpu - database_cpu
    server.terminate()
    server.wait()
    cuts = statistics.quantiles(latencies, n=100)
    print(f"gunicorn workers: {os.environ.get('WEB_CONCURRENCY') or 'gunicorn.conf.py default'}")
    print(f"requests served: {len(latencies):,} in {args.seconds:g} s by {args.clients} clients")
    print(
        f"latency p50 {cuts[49] * 1000:.0f} ms, p95 {cuts[94] * 1000:.0f} ms, "
        f"p99 {cuts[98] * 1000:.0f} ms"
    )
    for path, times in by_path.items():
        if len(times) >= 2:
            each = statistics.quantiles(times, n=100)
            print(
                f"  {path}: {len(times)} served, p50 {each[49] * 1000:.0f} ms, "
                f"p95 {each[94] * 1000:.0f} ms"
            )
    served = max(len(latencies), 1)
    print(
        f"CPU per request: web host {web_cpu / served * 1000:.1f} ms, database "
        f"{database_cpu / served * 1000:.1f} ms; everything else on the machine (these "
        f"clients included) {others:.1f} CPU-s over the run, {idle:.1f} CPU-s idle"
    )
    print(f"errors: {len(errors)} {sorted(set(errors))}")
    print(f"peak memory of the web host (master + workers, RSS): {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
