#!/usr/bin/env python3
"""Does the runner record the truth about hostile jobs (issue 11)?

1. Recorded peak memory against GNU `/usr/bin/time -v` ("Maximum resident set size") for five
   command tasks, each run through the real supervisor code (a fork of a loaded Django process,
   the launcher, sampling and kernel high-water marks): ratio recorded/true, target 0.9-1.15.
2. The supervisor's own peak RSS (a real `manage.py runjob`, sampled from outside every 20 ms)
   while its job prints 1 GB in short lines, and while it prints 200 MB on one line: target
   < 80 MiB.

For the forking tree, `time` reports the largest single process (wait4's ru_maxrss is a
maximum, not a sum); the runner records what the tree held at once, so that ratio is shown
against both. The runjob overhead target (1.1x `crontab run --skip-checks`) is measured by
bench/runjob_overhead.py.

    bin/system-deps bench   # GNU time, if /usr/bin/time is missing
    .venv/bin/python bench/runner_truth.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

MIB = 1024 * 1024
PY = (sys.executable, "-I", "-S", "-c")
PHP_LIKE = "$a = str_repeat('x', 10 * 1024 * 1024); usleep(300000); echo strlen($a), PHP_EOL;"
TREE = (
    "for i in 1 2 3 4; do "
    f"{sys.executable} -I -S -c \"b = b'x' * (20 << 20); import time; time.sleep(1)\" & "
    "done; wait"
)
TASKS: dict[str, tuple[str, ...]] = {
    "sh -c 'sleep 1'": ("sh", "-c", "sleep 1"),
    "python, 64 MiB": (*PY, "b = b'x' * (64 << 20); import time; time.sleep(0.3)"),
    "php-like, 10 MiB": ("php", "-r", PHP_LIKE)
    if shutil.which("php")
    else (*PY, "b = b'x' * (10 << 20); import time; time.sleep(0.3)"),
    "tree of 4 x 20 MiB": ("sh", "-c", TREE),
    "spike 300 MB": (*PY, "b = b'x' * 300_000_000; del b"),
}


def true_peak(argv: tuple[str, ...]) -> int:
    done = subprocess.run(
        ["/usr/bin/time", "-v", *argv], capture_output=True, text=True, check=True
    )
    for line in done.stderr.splitlines():
        if "Maximum resident set size" in line:
            return int(line.rsplit(":", 1)[1]) * 1024
    raise SystemExit(f"no maximum RSS in /usr/bin/time's report: {done.stderr}")


def memory_table() -> None:
    import django

    django.setup()
    from cronjobs.supervisor.process import Limits, run_attempt

    print("recorded peak vs /usr/bin/time -v (medians of 3)")
    print(f"{'command task':24}{'recorded MiB':>14}{'time -v MiB':>13}{'ratio':>8}")
    for name, argv in TASKS.items():
        recorded = sorted(run_attempt(argv, Limits(timeout=60)).peak_rss_bytes for _ in range(3))
        true = sorted(true_peak(argv) for _ in range(3))
        ratio = recorded[1] / true[1]
        print(f"{name:24}{recorded[1] / MIB:14.1f}{true[1] / MIB:13.1f}{ratio:8.2f}")
        if name.startswith("tree"):
            tree_sum = 4 * true_peak((*PY, "b = b'x' * (20 << 20)"))
            print(
                f"{'  (4 children at once)':24}{'':14}{tree_sum / MIB:13.1f}"
                f"{recorded[1] / tree_sum:8.2f}"
            )


def supervisor_peak(label: str, argv: list[str], workdir: Path, env: dict) -> None:
    tasks = workdir / "tasks.toml"
    command = ", ".join(json.dumps(arg) for arg in argv)
    tasks.write_text(f"[tasks.printer]\ntimeout = 600\nmax_attempts = 1\ncommand = [{command}]\n")
    manage = [sys.executable, str(ROOT / "manage.py")]
    proc = subprocess.Popen(
        [*manage, "runjob", "printer"],
        env={**env, "CRONJOBS_TASKS_FILE": str(tasks)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    peak, started = 0, time.monotonic()
    watched = psutil.Process(proc.pid)
    waiter = threading.Thread(target=proc.wait)
    waiter.start()
    while waiter.is_alive():
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    waiter.join()
    elapsed = time.monotonic() - started
    print(f"{label:34}{peak / MIB:10.1f} MiB  exit {proc.returncode}  {elapsed:6.1f} s")


def output_table() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-truth-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "LOG_DIR": str(workdir / "logs"),
    }
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True
    )
    print("supervisor (runjob) peak RSS, sampled every 20 ms from outside; target < 80 MiB")
    short = ["sh", "-c", "yes 'a short line of job output' | head -c 1000000000"]
    supervisor_peak("1 GB in short lines", short, workdir, env)
    one = [*PY, "import sys\nfor _ in range(200): sys.stdout.write('x' * 1000000)"]
    supervisor_peak("200 MB on one line", one, workdir, env)
    shutil.rmtree(workdir)


if __name__ == "__main__":
    if not os.path.exists("/usr/bin/time"):
        sys.exit("/usr/bin/time is missing: run bin/system-deps bench (installs GNU time)")
    memory_table()
    print()
    output_table()
