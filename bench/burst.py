#!/usr/bin/env python3
"""The midnight burst (issue 26): N tasks due in the same minute, started the old way (one
`manage.py runjob <task> --trigger cron` process per task, all at once, as cron starts them)
and the new way (one `manage.py runjob --due` dispatcher per host), on MariaDB.

Every task is `* * * * *` and runs `sh -c "date '+%s.%N <task>' >> starts"`, so each job writes
its own start time to one shared file. Each burst gets a fresh database (dropped, created,
migrated, synced, every other declared task disabled), its own task names and its own tasks
file, then waits for the next minute boundary and starts its processes right after it. For each
burst:

- start lag p50 / p99 / max: the job's own `date` minus the minute boundary;
- wall: from the boundary until every process of the burst has exited; last finish: the
  latest Execution.finished_at after the boundary ("all finished within the minute");
- CPU per supervised start: user+sys of the whole process tree (getrusage(RUSAGE_CHILDREN) of
  this script, which is made a child subreaper so orphans are reaped here and counted), minus
  the jobs' own sh+date cost (measured alone beforehand) for each job that started, divided
  by the jobs that started (N when none was skipped);
- supervision memory: every ~50 ms (or as fast as one sample reads), the PSS
  (/proc/<pid>/smaps_rollup) of every process in the tree except the jobs themselves (sh,
  date); its peak, and that peak divided by the supervised runs in flight at that sample (the
  supervisors: the runjob processes, or the dispatchers' forks), split by role (dispatcher,
  supervisor, keeper, worker/launcher); and the peak PSS of the whole tree, jobs included;
- the Execution rows: each task's slot ran exactly once, and the split between hosts.

The old path at 1,000 is skipped unless `--old-max` allows it: 1,000 Django interpreters at once
need tens of GiB (issue 26: ~57 MiB each) and would swap this 24 GiB machine.

    .venv/bin/python bench/burst.py [--sizes 100,1000] [--skip-old] [--old-max 100]
        [--hosts 3] [--max-running N] [--profile 41]
        [--database-url mysql://.../flagged_cron_bench_burst]

`--profile K` first runs K-1 supervised starts one after another inside this warm process
(what a forked supervisor does once Django is loaded): their CPU, the children's, statements
per start, and a cProfile of the second half.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.seed_executions import create_database  # noqa: E402

DEFAULT_URL = "mysql://root:@127.0.0.1:3306/flagged_cron_bench_burst"
PACKAGES = ("bench", "cronjobs", "flagged_cron_project", "flagged_products", "manage.py")
JOB_NAMES = {"sh", "dash", "bash", "date"}
SAMPLE_EVERY = 0.05  # seconds
PR_SET_CHILD_SUBREAPER = 36
MIB = 2**20
TARGETS = (
    "targets: 100 due p99 < 2 s; 1,000 due p99 < 20 s and all finished within the minute; "
    "CPU per start < 50 ms; supervision PSS < 8 MiB per running job; peak < 4 GiB"
)


@dataclasses.dataclass
class Burst:
    path: str  # "old" or "new"
    size: int
    hosts: int = 1

    @property
    def label(self) -> str:
        hosts = f"x{self.hosts}" if self.hosts > 1 else ""
        return f"{self.path}{self.size}{hosts}"

    def names(self) -> list[str]:
        return [f"{self.label}_{n}" for n in range(1, self.size + 1)]


@dataclasses.dataclass
class Memory:
    peak_total: int = 0  # bytes, the whole tree
    peak_supervision: int = 0  # bytes, the tree but the jobs
    in_flight_at_peak: int = 0  # supervised runs alive at the supervision peak
    roles_at_peak: Counter[str] = dataclasses.field(default_factory=Counter)  # role -> bytes
    max_in_flight: int = 0
    samples: int = 0
    sampler_cpu: float = 0.0  # seconds of this script's own CPU spent sampling


@dataclasses.dataclass
class Result:
    burst: Burst
    lags: list[float]
    wall: float
    last_finish: float | None
    cpu_per_start: float
    memory: Memory
    exit_codes: Counter[int]
    runs: Counter[int]  # runs per task -> number of tasks
    hosts: Counter[str]
    skipped_rows: int
    load: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="tasks due, comma-separated")
    parser.add_argument("--skip-old", action="store_true", help="no per-task processes")
    parser.add_argument("--skip-new", action="store_true", help="no dispatcher")
    parser.add_argument("--old-max", type=int, default=100, help="largest old-path burst")
    parser.add_argument("--hosts", type=int, default=3, help="dispatchers for the largest size")
    parser.add_argument("--max-running", type=int, help="CRONJOBS_MAX_RUNNING (default: unset)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a burst may take")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument(
        "--profile", type=int, default=0, help="also profile this many warm in-process starts"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-burst-"))
    bursts = plan(sizes, args)
    _become_subreaper()
    # An installed host has written the project's .pyc files on its first run; this sandbox
    # sets PYTHONDONTWRITEBYTECODE, which would have every old-path start compile them again.
    subprocess.run([sys.executable, "-m", "compileall", "-q", *PACKAGES], cwd=ROOT, check=True)
    env = base_env(workdir, args)
    os.environ.update(env)
    import django

    django.setup()
    job_cpu = job_cost(workdir / "job-cost")
    print(f"work dir {workdir}; the job alone (sh + date): {job_cpu * 1000:.2f} ms CPU")
    if args.profile:
        profile_warm_starts(Burst("warm", args.profile), env, workdir)
    results = []
    for burst in bursts:
        if burst.path == "old" and burst.size > args.old_max:
            print(f"{burst.label}: skipped, {burst.size} Django processes at once would swap")
            continue
        results.append(run_burst(burst, env, workdir, job_cpu, args.timeout))
        print_result(results[-1])
    if results:
        print_table(results)


def plan(sizes: list[int], args: argparse.Namespace) -> list[Burst]:
    bursts = []
    for size in sizes:
        if not args.skip_old:
            bursts.append(Burst("old", size))
        if not args.skip_new:
            bursts.append(Burst("new", size))
    if args.hosts > 1 and not args.skip_new:
        bursts.append(Burst("new", max(sizes), args.hosts))
    return bursts


def base_env(workdir: Path, args: argparse.Namespace) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": args.database_url,
        "LOG_DIR": str(workdir / "logs"),
        "CRONJOBS_TASKS_FILE": str(workdir / "none.toml"),
        "CRONJOBS_HOST": "bench-a",
        "TIME_ZONE": "UTC",
        "TZ": "UTC",
    }
    (workdir / "none.toml").write_text("")
    if args.max_running:
        env["CRONJOBS_MAX_RUNNING"] = str(args.max_running)
    return env


def _become_subreaper() -> None:
    # A dispatcher may exit before its supervisors: they are reparented here instead of to
    # init, so their CPU reaches RUSAGE_CHILDREN and they stay in the sampled tree.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}")


def job_command(name: str, starts: Path) -> list[str]:
    return ["sh", "-c", f"date '+%s.%N {name}' >> {starts}"]


def job_cost(starts: Path, count: int = 200) -> float:
    """CPU seconds of one job (sh and its date) started alone, to take out of the burst."""
    before = _children_cpu()
    for _ in range(count):
        subprocess.run(job_command("cost", starts), check=True)
    return (_children_cpu() - before) / count


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tasks_toml(names: list[str], starts: Path) -> str:
    return "".join(
        # A JSON list of plain strings is a TOML array.
        f"[tasks.{name}]\ncommand = {json.dumps(job_command(name, starts))}\n"
        'schedule = "* * * * *"\ntimeout = 120\nmax_attempts = 1\n\n'
        for name in names
    )


def prepare(burst: Burst, env: dict[str, str], workdir: Path) -> dict[str, str]:
    """A fresh database holding this burst's tasks, synced, every other task disabled."""
    from django.db import connections

    from cronjobs.models import Task

    starts = workdir / f"{burst.label}.starts"
    tasks_file = workdir / f"{burst.label}.toml"
    tasks_file.write_text(tasks_toml(burst.names(), starts))
    env = {**env, "CRONJOBS_TASKS_FILE": str(tasks_file)}
    connections.close_all()
    _drop_database(env["DATABASE_URL"])
    create_database(env["DATABASE_URL"])
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    subprocess.run([*manage, "synctasks"], env=env, cwd=ROOT, check=True, capture_output=True)
    # The bench settings declare a `* * * * *` no-op and the built-ins have their own minutes:
    # only the burst's tasks may be due.
    Task.objects.exclude(name__startswith=f"{burst.label}_").update(enabled=False)
    assert Task.objects.filter(enabled=True).count() == burst.size
    return env


def _drop_database(url: str) -> None:
    import dj_database_url
    import MySQLdb

    cfg = dj_database_url.parse(url)
    conn = MySQLdb.connect(
        host=cfg["HOST"] or "127.0.0.1",
        port=int(cfg["PORT"] or 3306),
        user=cfg["USER"],
        password=cfg["PASSWORD"],
    )
    conn.cursor().execute(f"DROP DATABASE IF EXISTS `{cfg['NAME']}`")
    conn.close()


def run_burst(
    burst: Burst, env: dict[str, str], workdir: Path, job_cpu: float, timeout: float
) -> Result:
    env = prepare(burst, env, workdir)
    boundary = (time.time() // 60 + 1) * 60
    print(f"\n{burst.label}: waiting {boundary - time.time():.0f} s for the minute boundary")
    time.sleep(boundary - time.time())
    load = os.getloadavg()[0]
    cpu_before = _children_cpu()
    with open(workdir / f"{burst.label}.log", "ab") as log:
        top = start(burst, env, log)
    sampler = Sampler(dispatchers=set(top) if burst.path == "new" else set())
    sampler.start()
    codes = reap(set(top), boundary + timeout)
    wall = time.time() - boundary
    sampler.stop()
    lags = read_lags(workdir / f"{burst.label}.starts", boundary)
    cpu = _children_cpu() - cpu_before - len(lags) * job_cpu
    rows = read_rows(burst, boundary)
    return Result(
        burst=burst,
        lags=lags,
        wall=wall,
        last_finish=rows["last_finish"],
        # Per job that started: a slot skipped unstarted costs less, so this is not flattered.
        cpu_per_start=cpu / max(1, len(lags)),
        memory=sampler.memory,
        exit_codes=codes,
        runs=rows["runs"],
        hosts=rows["hosts"],
        skipped_rows=rows["skipped"],
        load=load,
    )


def start(burst: Burst, env: dict[str, str], log: IO[bytes]) -> list[int]:
    """Popen in a tight loop, as cron does at the minute's first second."""
    manage = [sys.executable, str(ROOT / "manage.py"), "runjob"]
    if burst.path == "old":
        argvs = [([*manage, name, "--trigger", "cron"], env) for name in burst.names()]
    else:
        hosts = [f"bench-{chr(ord('a') + n)}" for n in range(burst.hosts)]
        argvs = [([*manage, "--due"], {**env, "CRONJOBS_HOST": host}) for host in hosts]
    return [
        subprocess.Popen(argv, env=argv_env, cwd=ROOT, stdout=log, stderr=log).pid
        for argv, argv_env in argvs
    ]


def reap(top: set[int], deadline: float) -> Counter[int]:
    """Wait for every process of the tree, orphans included (we are their subreaper), and
    return the exit codes of the processes we started."""
    codes: Counter[int] = Counter()
    while True:
        try:
            pid, status, _ = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return codes
        if pid == 0:
            if time.time() > deadline:
                for child in psutil.Process().children(recursive=True):
                    child.kill()
                print("  the burst ran past --timeout: killed what was left")
            time.sleep(0.01)
            continue
        if pid in top:
            codes[os.waitstatus_to_exitcode(status)] += 1


class Sampler(threading.Thread):
    """PSS of the tree below this script every ~50 ms (see the module docstring)."""

    def __init__(self, dispatchers: set[int]) -> None:
        super().__init__(daemon=True)
        self.memory = Memory()
        self.dispatchers = dispatchers
        # A supervisor's parent: this script (old path, and new-path supervisors whose
        # dispatcher has exited) or a dispatcher; keepers and everything below them are deeper.
        self.parents = {os.getpid(), *dispatchers}
        self.done = threading.Event()

    def run(self) -> None:
        # Above the burst's hundreds of runnable processes, or it samples every few seconds;
        # children do not inherit a thread's priority. Needs root; otherwise sample slower.
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        started = time.thread_time()
        while not self.done.is_set():
            began = time.monotonic()
            self.sample()
            # At most half a core for the observer, however many processes there are to read.
            self.done.wait(max(SAMPLE_EVERY, time.monotonic() - began))
        self.memory.sampler_cpu = time.thread_time() - started

    def stop(self) -> None:
        self.done.set()
        self.join()

    def sample(self) -> None:
        total = supervision = 0
        roles: Counter[str] = Counter()
        in_flight: Counter[str] = Counter()
        supervisors: set[int] = set()
        for process in psutil.Process().children(recursive=True):
            try:
                pss = _pss(process.pid)
                total += pss
                if process.name() in JOB_NAMES:
                    continue
                supervision += pss
                role = self.role(process.pid, process.ppid(), supervisors)
                roles[role] += pss
                in_flight[role] += 1
            except (OSError, psutil.Error):
                continue  # it exited between the listing and the read
        memory = self.memory
        memory.samples += 1
        memory.peak_total = max(memory.peak_total, total)
        memory.max_in_flight = max(memory.max_in_flight, in_flight["supervisor"])
        if supervision > memory.peak_supervision:
            memory.peak_supervision = supervision
            memory.in_flight_at_peak = in_flight["supervisor"]
            memory.roles_at_peak = roles

    def role(self, pid: int, ppid: int, supervisors: set[int]) -> str:
        """psutil lists parents before their children, so a keeper's supervisor is known."""
        if pid in self.dispatchers:
            return "dispatcher"
        if ppid in self.parents:
            supervisors.add(pid)
            return "supervisor"
        # The worker execs the bare-interpreter launcher, which forks the command.
        return "keeper" if ppid in supervisors else "launcher"


def _pss(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
        for line in fh:
            if line.startswith(b"Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def read_lags(starts: Path, boundary: float) -> list[float]:
    if not starts.exists():
        return []
    return sorted(float(line.split()[0]) - boundary for line in starts.read_text().splitlines())


def read_rows(burst: Burst, boundary: float) -> dict:
    """Runs per task of the burst's slot, the host split, skips and the last finish."""
    from django.db.models import Max

    from cronjobs.models import Execution

    slot = dt.datetime.fromtimestamp(boundary, dt.UTC)
    rows = Execution.objects.filter(task__name__startswith=f"{burst.label}_")
    ran = rows.filter(attempt__gte=1, scheduled_for=slot)
    run_ids: dict[str, set[str]] = {name: set() for name in burst.names()}
    for name, run_id in ran.values_list("task__name", "run_id"):
        run_ids[name].add(run_id)
    runs = Counter(len(ids) for ids in run_ids.values())
    last = ran.aggregate(last=Max("finished_at"))["last"]
    return {
        "runs": runs,
        "hosts": Counter(ran.filter(attempt=1).values_list("host", flat=True)),
        "skipped": rows.filter(attempt=0).count(),
        "last_finish": (last - slot).total_seconds() if last else None,
    }


def profile_warm_starts(burst: Burst, env: dict[str, str], workdir: Path) -> None:
    """What one supervised start costs once Django is loaded: `run_chain` of each task in turn
    from this process (the work a forked supervisor does), its CPU and the children's, and
    where the time goes (cProfile, the top functions by cumulative time)."""
    import cProfile
    import pstats

    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cronjobs.supervisor import db
    from cronjobs.supervisor.registry import registry
    from cronjobs.supervisor.runner import run_chain

    env = prepare(burst, env, workdir)
    settings.CRONJOBS_TASKS_FILE = Path(env["CRONJOBS_TASKS_FILE"])
    db.not_inheritable()
    specs = [registry.load().tasks[name] for name in burst.names()]
    run_chain(specs[0], "cron")  # the first pays for the lazy imports and the connection
    half = len(specs) // 2
    # Each task once: a second run in the same minute would find its slot taken.
    for profiled, batch in ((False, specs[1:half]), (True, specs[half:])):
        profile, queries = cProfile.Profile(), CaptureQueriesContext(connection)
        own, children = time.process_time(), _children_cpu()
        with profile if profiled else contextlib.nullcontext(), queries:
            for spec in batch:
                run_chain(spec, "cron")
        count = len(batch)
        own, children = time.process_time() - own, _children_cpu() - children
        print(
            f"{count} warm starts{' (profiled)' if profiled else ''}: this process "
            f"{own / count * 1000:.1f} ms CPU, its children {children / count * 1000:.1f} ms "
            f"(the keeper and launcher, the job), {len(queries) / count:.1f} statements "
            "per start"
        )
    pstats.Stats(profile).sort_stats("cumulative").print_stats(r"cronjobs|psutil", 25)
    print(f"of the children: the launcher and the job {launcher_cost(workdir) * 1000:.1f} ms")


def launcher_cost(workdir: Path, count: int = 50) -> float:
    """CPU seconds of the bare-interpreter launcher that a command attempt's keeper execs
    (cronjobs/supervisor/launcher.py), with its job, started alone (this process stands in
    for the supervisor)."""
    from cronjobs.supervisor.process import LAUNCHER

    before = _children_cpu()
    with open(os.devnull, "wb") as report:
        keeper = ["--keeper", str(os.getpid()), str(report.fileno())]
        argv = [sys.executable, "-I", "-S", LAUNCHER, *keeper]
        for _ in range(count):
            job = job_command("cost", workdir / "job-cost")
            subprocess.run([*argv, *job], pass_fds=(report.fileno(),), check=True)
    return (_children_cpu() - before) / count


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(len(values) * fraction))]


def print_result(result: Result) -> None:
    memory = result.memory
    codes = ", ".join(f"{code}: {count}" for code, count in sorted(result.exit_codes.items()))
    runs = ", ".join(f"{count} task(s) {n}x" for n, count in sorted(result.runs.items()))
    print(f"  load average at the boundary {result.load:.1f}; exit codes {codes}")
    print(f"  job start lines {len(result.lags)} of {result.burst.size}; runs per slot: {runs}")
    print(f"  skipped rows {result.skipped_rows}; hosts {dict(sorted(result.hosts.items()))}")
    print(
        f"  {memory.samples} memory samples, max {memory.max_in_flight} runs in flight, "
        f"sampling cost {memory.sampler_cpu:.1f} s CPU of this script"
    )
    roles = ", ".join(f"{role} {pss / MIB:.0f}" for role, pss in memory.roles_at_peak.items())
    print(f"  supervision PSS at its peak, MiB: {roles}")


def print_table(results: list[Result]) -> None:
    head = (
        "burst",
        "started",
        "lag p50",
        "p99",
        "max",
        "wall",
        "last done",
        "CPU/start",
        "sup. PSS",
        "per run",
        "peak PSS",
    )
    print(f"\n{head[0]:10}" + "".join(f"{h:>12}" for h in head[1:]))
    for result in results:
        memory, lags = result.memory, result.lags
        cells = [
            f"{len(lags)}/{result.burst.size}",
            *(f"{value:.2f} s" for value in _lag_figures(lags)),
            f"{result.wall:.1f} s",
            f"{result.last_finish:.1f} s" if result.last_finish is not None else "-",
            f"{result.cpu_per_start * 1000:.0f} ms",
            f"{memory.peak_supervision / MIB:.0f} MiB",
            f"{memory.peak_supervision / max(1, memory.in_flight_at_peak) / MIB:.1f} MiB",
            f"{memory.peak_total / MIB:.0f} MiB",
        ]
        print(f"{result.burst.label:10}" + "".join(f"{cell:>12}" for cell in cells))
    print(TARGETS)


def _lag_figures(lags: list[float]) -> list[float]:
    if not lags:
        return [float("nan")] * 3
    return [percentile(lags, 0.5), percentile(lags, 0.99), lags[-1]]


if __name__ == "__main__":
    main()
