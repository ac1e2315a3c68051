#!/usr/bin/env python3
"""Fencing figures (issue 22), on MariaDB: how long after a partition a supervisor's job is
dead, and how much time that leaves before its lease could lapse in the database.

Each trial is one `runjob` (host a, lease TTL 6 s, beat 2 s) whose connections to MariaDB go
through its own TCP proxy (tests/partition_proxy.py). Once the job runs, and after a random
0-2 s so that the partition falls anywhere between two renewals, the proxy is frozen
(SIGSTOP). The bench polls the job's pid every 5 ms; when it is gone it asks the database, on
its own connection, how far the lease's `expires_at` is from NOW(6): that is the margin left
before another host could take the lease. Half of the jobs exit on SIGTERM (`exec sleep`), half
ignore it (`trap '' TERM`), so the SIGKILL after the grace is measured too. Trials run
`--parallel` at a time with different tasks.

Side by side, the old behaviour: the same trial with `on_lease_lost = "continue"` (what every
run did before fencing); the figure is whether its job is still alive when the lease lapses.

    .venv/bin/python bench/fencing.py [--trials 20] [--parallel 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.reliability import recreate_database  # noqa: E402

DEFAULT_URL = "mysql://root:@127.0.0.1:3306/flagged_cron_bench_fencing"
TTL = 6

JOBS = {
    "exits": 'echo $$ > "$BENCH_DIR/$CRONJOBS_TASK.pid"; exec sleep 600',
    "ignores": "echo $$ > \"$BENCH_DIR/$CRONJOBS_TASK.pid\"; trap '' TERM; "
    "while :; do sleep 0.05; done",
}


def tasks_file(directory: Path, names: list[tuple[str, str, str]]) -> Path:
    """[(task, job kind, on_lease_lost)] as a tasks file."""
    lines = []
    for name, kind, on_lease_lost in names:
        command = JOBS[kind].replace('"', '\\"')
        lines += [
            f"[tasks.{name}]",
            f'command = ["sh", "-c", "{command}"]',
            'pass_env = ["BENCH_DIR"]',
            "timeout = 600",
            "max_attempts = 1",
            f'on_lease_lost = "{on_lease_lost}"',
            "",
        ]
    path = directory / "tasks.toml"
    path.write_text("\n".join(lines))
    return path


class Trial:
    def __init__(self, name: str, kind: str, baseline: bool, url: str, env: dict[str, str]):
        self.name, self.kind, self.baseline = name, kind, baseline
        parsed = url.rsplit("/", 1)
        host_port = parsed[0].rsplit("@", 1)[1]
        host, _, port = host_port.partition(":")
        self.proxy = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "partition_proxy.py"), host, port or "3306"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proxy.stdout is not None
        proxy_port = self.proxy.stdout.readline().strip()
        self.url = url.replace(host_port, f"127.0.0.1:{proxy_port}")
        self.runjob = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runjob", name, "--trigger", "cron"],
            env={**env, "DATABASE_URL": self.url, "CRONJOBS_HOST": "a"},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pid = 0
        self.frozen_at = 0.0
        self.died_at: float | None = None
        self.margin: float | None = None

    def freeze(self) -> None:
        os.kill(self.proxy.pid, signal.SIGSTOP)
        self.frozen_at = time.monotonic()

    def finish(self) -> None:
        os.kill(self.proxy.pid, signal.SIGCONT)
        if self.baseline:
            self.runjob.kill()  # its job would run for ten minutes: the supervisor takes it along
        try:
            self.runjob.wait(timeout=120)
        finally:
            self.proxy.kill()
            self.proxy.wait()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def seconds_left(db: Any, task: str) -> float:
    """Seconds from the database's NOW(6) to the task's lease expiry (negative: lapsed)."""
    cursor = db.cursor()
    cursor.execute(
        "SELECT TIMESTAMPDIFF(MICROSECOND, NOW(6), l.expires_at) FROM cronjobs_lease l "
        "JOIN cronjobs_task t ON t.id = l.task_id WHERE t.name = %s",
        (task,),
    )
    row = cursor.fetchone()
    return float("nan") if row is None or row[0] is None else row[0] / 1e6


def run_round(trials: list[Trial], directory: Path, db: Any) -> None:
    for trial in trials:
        pid_file = directory / f"{trial.name}.pid"
        deadline = time.monotonic() + 120
        while not (pid_file.exists() and pid_file.read_text().strip()):
            if time.monotonic() > deadline:
                raise SystemExit(f"{trial.name}: the job did not start")
            time.sleep(0.02)
        trial.pid = int(pid_file.read_text())
    time.sleep(2.5)  # a renewal or two went through
    for trial in trials:
        time.sleep(random.uniform(0, 2 / len(trials)))
        trial.freeze()
    watching = {trial.name: trial for trial in trials}
    while watching:
        now = time.monotonic()
        for name, trial in list(watching.items()):
            left = seconds_left(db, name) if trial.baseline else None
            if not alive(trial.pid):
                trial.died_at = time.monotonic()
                trial.margin = seconds_left(db, name) + (time.monotonic() - trial.died_at)
                del watching[name]
            elif left is not None and left < -2:
                trial.margin = left  # still alive 2 s after the lease lapsed: the old way
                del watching[name]
            elif now - trial.frozen_at > 60:
                raise SystemExit(f"{name}: the job outlived the partition by a minute")
        time.sleep(0.005)
    for trial in trials:
        trial.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=5)
    parser.add_argument("--baseline", type=int, default=2, help="trials with continue")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()

    import dj_database_url
    import MySQLdb

    recreate_database(args.database_url)
    directory = Path(tempfile.mkdtemp(prefix="bench-fencing-"))
    specs = [(f"fence_{n:02d}", list(JOBS)[n % 2], "stop") for n in range(args.trials)]
    specs += [(f"old_{n:02d}", "exits", "continue") for n in range(args.baseline)]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "LOG_DIR": str(directory / "logs"),
        "CRONJOBS_TASKS_FILE": str(tasks_file(directory, specs)),
        "CRONJOBS_LEASE_TTL": str(TTL),
        "CRONJOBS_LEASE_BEAT": "2",
        "CRONJOBS_KILL_GRACE": "5",
        "BENCH_DIR": str(directory),
    }
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"],
        env={**env, "DATABASE_URL": args.database_url},
        cwd=ROOT,
        check=True,
    )
    cfg = dj_database_url.parse(args.database_url)
    db = MySQLdb.connect(
        host=cfg["HOST"] or "127.0.0.1",
        port=int(cfg["PORT"] or 3306),
        user=cfg["USER"],
        password=cfg["PASSWORD"],
        database=cfg["NAME"],
        autocommit=True,
    )
    done: list[Trial] = []
    queue = list(specs)
    while queue:
        batch, queue = queue[: args.parallel], queue[args.parallel :]
        trials = [
            Trial(name, kind, on_lost == "continue", args.database_url, env)
            for name, kind, on_lost in batch
        ]
        run_round(trials, directory, db)
        done += trials
    report(done, args)


def report(done: list[Trial], args: argparse.Namespace) -> None:
    fenced = [t for t in done if not t.baseline]
    print(
        f"fencing, lease TTL {TTL} s, beat 2 s, margin {TTL / 3:g} s, grace up to {TTL / 6:g} s; "
        f"{len(fenced)} trials, {args.parallel} at a time"
    )
    print(f"{'job':<32} {'trials':>6} {'death: median':>14} {'worst':>7} {'margin: worst':>14}")
    for kind in JOBS:
        mine = [t for t in fenced if t.kind == kind]
        if not mine:
            continue
        deaths = [t.died_at - t.frozen_at for t in mine if t.died_at is not None]
        margins = [t.margin for t in mine if t.margin is not None]
        label = "exits on SIGTERM" if kind == "exits" else "ignores SIGTERM (SIGKILL)"
        print(
            f"{label:<32} {len(mine):>6} {statistics.median(deaths):>13.2f}s "
            f"{max(deaths):>6.2f}s {min(margins):>13.2f}s"
        )
    margins = [t.margin for t in fenced if t.margin is not None]
    lapsed = sum(1 for m in margins if m <= 0)
    median = statistics.median(margins)
    print(
        f"all fenced trials: worst margin {min(margins):.2f} s, median {median:.2f} s; "
        f"jobs alive when their lease could lapse: {lapsed} of {len(fenced)}"
    )
    for trial in (t for t in done if t.baseline):
        state = (
            f"dead {trial.margin:.2f} s before the lapse"
            if trial.died_at is not None and trial.margin is not None
            else "still running 2 s after the lease lapsed (another host may take it now)"
        )
        print(f'old behaviour (on_lease_lost = "continue"), {trial.name}: {state}')


if __name__ == "__main__":
    main()
