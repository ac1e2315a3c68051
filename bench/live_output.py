#!/usr/bin/env python3
"""Live output under load: a job printing 1 MB/s under `runjob`, followed by 20 clients that
each poll GET /api/runs/<run_id>/output/ once a second through gunicorn (gunicorn.conf.py), on
MariaDB. Side by side in one run, the same 20 clients polling `/api/running/` (what the
"Running now" panel polls) while the same job prints: the cost of a poll that already existed.

    .venv/bin/python bench/live_output.py [--clients 20] [--seconds 20] [--rate 1000000]
                                          [--url mysql://root:@127.0.0.1:3306/flagged_cron_bench_live]

Prints, for each phase: polls answered, latency p50/p95, errors, bytes of output received and
skipped per client, and CPU per poll of the web host (gunicorn's master and workers) and of the
database; and for the whole run the supervisor's CPU per second of output (the runjob process,
not the job) and how often the running row's output was rewritten.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.seed_executions import ROOT, setup_django
from bench.web import cpu_seconds, database_processes, free_port

LIVE_URL = "mysql://root:@127.0.0.1:3306/flagged_cron_bench_live"
# A job printing `rate` bytes a second in lines of 100 bytes, for `seconds` seconds.
PRINTER = """
import sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
line = "x" * 99 + "\\n"
block = line * (rate // 100 // 10)
start = time.monotonic()
tick = 0
while time.monotonic() - start < seconds:
    sys.stdout.write(block)
    sys.stdout.flush()
    tick += 1
    time.sleep(max(0.0, start + tick / 10 - time.monotonic()))
"""


def token() -> str:
    from django.contrib.auth import get_user_model

    from cronjobs import tokens
    from cronjobs.models import ApiToken

    user, _ = get_user_model().objects.get_or_create(
        username="bench_admin", defaults={"is_staff": True, "is_superuser": True}
    )
    ApiToken.objects.filter(name="bench-live").delete()
    return tokens.create_token("bench-live", read_only=True, created_by=user)[1]


def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except OSError:
        return 0, b""


class Phase:
    """`clients` threads, each asking `path(client)` once a second for `seconds`."""

    def __init__(self, name: str, base: str, headers: dict[str, str], clients: int) -> None:
        self.name, self.base, self.headers, self.clients = name, base, headers, clients
        self.latencies: list[float] = []
        self.errors: list[int] = []
        self.received = [0] * clients
        self.skipped = [0] * clients
        self.sizes: set[int] = set()
        self.lock = threading.Lock()

    def run(self, seconds: float, run_id: str, follow: bool) -> None:
        deadline = time.monotonic() + seconds

        def client(n: int) -> None:
            offset = 0
            next_at = time.monotonic() + n / self.clients  # spread over the second
            while next_at < deadline:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += 1.0
                path = f"/api/runs/{run_id}/output/?offset={offset}" if follow else self.name
                began = time.monotonic()
                status, body = fetch(self.base + path, self.headers)
                took = time.monotonic() - began
                with self.lock:
                    self.latencies.append(took)
                    if status != 200:
                        self.errors.append(status)
                        continue
                    if follow:
                        answer = json.loads(body)
                        offset = answer["offset"]
                        self.received[n] += len(answer["text"].encode())
                        self.skipped[n] += answer["skipped"]
                        self.sizes.add(answer["size"])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase")
    parser.add_argument("--rate", type=int, default=1_000_000, help="bytes a second")
    parser.add_argument("--url", default=LIVE_URL)
    args = parser.parse_args()
    setup_django(args.url)
    import psutil
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    secret = token()
    workdir = Path(tempfile.mkdtemp(prefix="bench-live-"))
    (workdir / "printer.py").write_text(PRINTER)
    length = 2 * args.seconds + 30  # both phases, the start-up and a margin
    (workdir / "tasks.toml").write_text(
        "[tasks.bench_printer]\n"
        f'command = ["{sys.executable}", "{workdir / "printer.py"}", '
        f'"{args.rate}", "{length}"]\n'
        f"timeout = {int(length) + 60}\nmax_attempts = 1\n"
    )
    env = {
        **os.environ,
        "CRONJOBS_TASKS_FILE": str(workdir / "tasks.toml"),
        "LOG_DIR": str(workdir / "logs"),
        "WEB_ACCESS_LOG": "",
    }
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
    )
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {secret}"}
    while fetch(f"{base}/api/status/", headers)[0] == 0:
        time.sleep(0.2)
    from cronjobs.models import Execution

    runjob = subprocess.Popen(
        [sys.executable, "manage.py", "runjob", "bench_printer", "--trigger", "manual"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # its "received SIGTERM" when the bench ends it
    )
    while not (
        row := Execution.objects.filter(task__name="bench_printer", status="running")
        .order_by("-id")
        .first()
    ):
        time.sleep(0.2)
    time.sleep(2)  # the job is printing
    web = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    database = database_processes()
    supervisor = psutil.Process(runjob.pid)
    supervisor_before, began = cpu_seconds([supervisor]), time.monotonic()
    phases = [
        Phase(f"/api/runs/{row.run_id}/output/", base, headers, args.clients),
        Phase("/api/running/", base, headers, args.clients),
    ]
    figures = []
    for phase, follow in zip(phases, (True, False), strict=True):
        web_before, database_before = cpu_seconds(web), cpu_seconds(database)
        phase.run(args.seconds, row.run_id, follow)
        figures.append((cpu_seconds(web) - web_before, cpu_seconds(database) - database_before))
    supervisor_cpu, elapsed = (
        cpu_seconds([supervisor]) - supervisor_before,
        time.monotonic() - began,
    )
    printed = Execution.objects.get(pk=row.pk).output_bytes or 0
    runjob.terminate()
    runjob.wait()
    server.terminate()
    server.wait()

    print(
        f"{args.clients} clients polling once a second for {args.seconds:g} s each, "
        f"a job printing {args.rate / 1e6:g} MB/s, gunicorn workers: "
        f"{os.environ.get('WEB_CONCURRENCY') or 'gunicorn.conf.py default'}"
    )
    for phase, (web_cpu, database_cpu) in zip(phases, figures, strict=True):
        polls = max(len(phase.latencies), 1)
        cuts = statistics.quantiles(phase.latencies, n=100)
        print(
            f"{phase.name if 'output' not in phase.name else 'GET /api/runs/<run>/output/'}: "
            f"{len(phase.latencies)} polls, p50 {cuts[49] * 1000:.0f} ms, "
            f"p95 {cuts[94] * 1000:.0f} ms, errors {len(phase.errors)}; CPU per poll: web host "
            f"{web_cpu / polls * 1000:.2f} ms, database {database_cpu / polls * 1000:.2f} ms"
        )
        if "output" in phase.name:
            per_client = statistics.mean(phase.received) / args.seconds
            skipped = statistics.mean(phase.skipped) / args.seconds
            writes = len(phase.sizes) / args.seconds
            print(
                f"  each client received {per_client / 1024:.0f} KiB/s of text and was told "
                f"{skipped / 1024:.0f} KiB/s were skipped; {len(phase.sizes)} distinct sizes "
                f"seen (the row rewritten about {writes:.1f} times a second)"
            )
    print(
        f"supervisor (runjob, not the job): {supervisor_cpu / elapsed * 1000:.0f} ms of CPU per "
        f"second while the job printed {args.rate / 1e6:g} MB/s; {printed / 1e6:.0f} MB printed "
        "in all"
    )


if __name__ == "__main__":
    main()
