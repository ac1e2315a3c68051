#!/usr/bin/env python3
"""What a Healthchecks ping costs a run: the wall time of `manage.py runjob bench_noop` (a no-op
function) without a ping URL, with one pointing at a loopback endpoint that answers in 1 ms,
and with one pointing at an endpoint that accepts the connection and never answers.

Each run is a fresh process; runs are interleaved; we report medians and the time added over
no ping. Process start-up varies by far more than a ping costs on a busy machine, so the
pings of one run (`Pinger.start()` then `.success()`) are also timed in-process, 200 times.
Targets (issue 13): < 20 ms added with the 1 ms endpoint, < 5 s with the silent one (pings
wait CRONJOBS_PING_TIMEOUT per try and at most 3 s per run in all).

    .venv/bin/python bench/pings.py [--runs 15] [--silent-runs 3] [--database-url mysql://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.seed_executions import create_database  # noqa: E402


class Endpoint(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, silent: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.silent = silent
        self.hits = 0
        self.stop = threading.Event()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/ping/bench-key/{{task}}"


class _Handler(BaseHTTPRequestHandler):
    server: Endpoint

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.hits += 1
        if self.server.silent:
            self.server.stop.wait(60)
            return
        time.sleep(0.001)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


def start(silent: bool) -> Endpoint:
    server = Endpoint(silent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def time_pings(fast: Endpoint, silent: Endpoint, env: dict) -> dict[str, tuple[float, float]]:
    """start() + success() of one run, timed in this process: (median, max) in ms."""
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "CRONJOBS_PING_TIMEOUT")})
    import django

    django.setup()
    from cronjobs.supervisor.pings import Pinger, new_rid

    results = {}
    for name, server, times in (("1 ms endpoint", fast, 200), ("silent endpoint", silent, 3)):
        url = server.url().replace("{task}", "bench_noop")
        samples = []
        for _ in range(times):
            started = time.perf_counter()
            pinger = Pinger(url, new_rid())
            pinger.start()
            pinger.success()
            samples.append((time.perf_counter() - started) * 1000)
        results[name] = (statistics.median(samples), max(samples))
    return results


def measure(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--silent-runs", type=int, default=3)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-pings-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        "LOG_DIR": str(workdir / "logs"),
        "CRONJOBS_PING_TIMEOUT": "2",
    }
    python, manage = sys.executable, str(ROOT / "manage.py")
    if env["DATABASE_URL"].startswith("mysql"):
        create_database(env["DATABASE_URL"])
    subprocess.run([python, manage, "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    runjob = [python, manage, "runjob", "bench_noop", "--trigger", "cron"]
    fast, silent = start(silent=False), start(silent=True)
    variants = {
        "no ping URL": {**env, "CRONJOBS_PING_URL_TEMPLATE": ""},
        "ping, endpoint answers in 1 ms": {**env, "CRONJOBS_PING_URL_TEMPLATE": fast.url()},
        "ping, endpoint never answers": {**env, "CRONJOBS_PING_URL_TEMPLATE": silent.url()},
    }
    for _ in range(2):  # warm the page cache and .pyc files
        measure(runjob, variants["no ping URL"])
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for run in range(args.runs):
        for name, variant_env in variants.items():
            if name.endswith("never answers") and run >= args.silent_runs:
                continue
            samples[name].append(measure(runjob, variant_env))
    in_process = time_pings(fast, silent, env)
    silent.stop.set()
    wall = {name: statistics.median(values) for name, values in samples.items()}
    base = wall["no ping URL"]
    database = env["DATABASE_URL"].split(":")[0]
    print(f"database: {database}; interleaved fresh runs after 2 warm-ups; medians")
    print(f"{'':34}{'runs':>6}{'wall (ms)':>12}{'added (ms)':>12}")
    for name, value in wall.items():
        print(f"{name:34}{len(samples[name]):6}{value * 1000:12.1f}{(value - base) * 1000:12.1f}")
    print(f"pings received by the 1 ms endpoint: {fast.hits} (expected {2 * args.runs + 400})")
    for name, (median, worst) in in_process.items():
        print(
            f"in-process, one run's pings, {name:30} median {median:8.2f} ms, max {worst:8.1f} ms"
        )
    print("targets: added < 20 ms (1 ms endpoint), < 5000 ms (silent endpoint)")


if __name__ == "__main__":
    main()
