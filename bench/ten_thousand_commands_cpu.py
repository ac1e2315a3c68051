#!/usr/bin/env python3
"""CPU and wall time of the commands that load every declaration (synctasks, check, crontab
add, runjob --list) with 10,000 tasks, for two checkouts side by side in one run: on a shared
machine CPU time (this process's and its children's, such as crontab add's settings check)
says what the code costs when wall time says mostly how busy the machine is.

Each checkout runs in a process of its own on a fresh SQLite database with the tasks file of
bench/ten_thousand_tasks.py; each figure is the median of 3 in-process runs after Django's
start-up, the registry reloaded from the file before each (a command is a process of its own).
The rounds alternate the checkouts.

    .venv/bin/python bench/ten_thousand_commands_cpu.py [--tasks 10000] [--rounds 2] \
        [--before DIR] [--after DIR]

DIR is a checkout (for example `git archive COMMIT | tar -x -C DIR`); the default is this one.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default="")
    parser.add_argument("--after", default=str(HERE))
    parser.add_argument("--inner", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        measure(Path(args.inner), args.tasks)
        return
    trees = [tree for tree in (args.before, args.after) if tree]
    for round_ in range(1, args.rounds + 1):
        for tree in trees:
            print(f"== {tree}, round {round_}", flush=True)
            command = [sys.executable, __file__, "--inner", tree, "--tasks", str(args.tasks)]
            subprocess.run(command, check=True)


def cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measure(tree: Path, tasks: int) -> None:
    sys.path[:0] = [str(tree), str(tree / "bench")]
    os.chdir(tree)
    import ten_thousand_tasks as bench

    work = Path(tempfile.mkdtemp(prefix="bench-commands-cpu-"))
    (work / "tasks.toml").write_text(bench.tasks_toml(tasks))
    fake = work / "crontab.sh"
    fake.write_text(bench.FAKE_CRONTAB.format(file=work / "crontab"))
    fake.chmod(0o755)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="flagged_cron_project.settings",
        SECRET_KEY="bench-only-secret-" + "x" * 50,
        DATABASE_URL=f"sqlite:///{work / 'bench.sqlite3'}",
        LOG_DIR=str(work / "logs"),
        CRONJOBS_TASKS_FILE=str(work / "tasks.toml"),
        TIME_ZONE="UTC",
        TZ="UTC",
        STATIC_ROOT=str(work / "static"),
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from cronjobs.supervisor.registry import registry

    call_command("migrate", verbosity=0)
    settings.CRONTAB_EXECUTABLE = str(fake)
    env_file = work / "cron.env"
    checked = ("DATABASE_URL", "LOG_DIR", "CRONJOBS_TASKS_FILE", "TIME_ZONE", "SECRET_KEY")
    env_file.write_text("".join(f"{name}={os.environ[name]}\n" for name in checked))
    surfaces: dict[str, Callable[[], object]] = {
        "registry load": registry.load,
        "synctasks": lambda: bench.command("synctasks"),
        "check": lambda: bench.command("check"),
        "crontab add": lambda: bench.command("crontab", "add", "--env-file", str(env_file)),
        "runjob --list": lambda: bench.command("runjob", "--list"),
    }
    for name, surface in surfaces.items():
        walls, cpus = [], []
        for _ in range(3):
            bench.fresh_registry()
            began_cpu, began = cpu(), time.perf_counter()
            surface()
            cpus.append(cpu() - began_cpu)
            walls.append(time.perf_counter() - began)
        wall, used = statistics.median(walls) * 1000, statistics.median(cpus) * 1000
        print(f"{name:<14} {used:7.0f} ms CPU {wall:7.0f} ms wall", flush=True)


if __name__ == "__main__":
    main()
