"""manage.py runjob <task> | --due | --all | --list  (docs/operations.md; exit codes 0, 1, 2, 3)."""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import datetime
from types import FrameType
from typing import Any, NoReturn

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.db.backends.signals import connection_created

from cronjobs import schedules
from cronjobs.models import Execution
from cronjobs.supervisor import db, spool
from cronjobs.supervisor.db import bound_waits
from cronjobs.supervisor.dispatch import Dispatcher
from cronjobs.supervisor.registry import registry
from cronjobs.supervisor.runner import (
    EXIT_FAILED,
    EXIT_SUCCEEDED,
    EXIT_USAGE,
    Claimed,
    Outcome,
    run_chain,
    spool_not_run,
)
from cronjobs.tasksettings import TaskSpec


def next_run_text(spec: TaskSpec) -> str:
    """The next run in the site's zone, then on the task's own wall clock when it has a zone."""
    moment = schedules.next_run(spec.schedule, zone=spec.time_zone)
    if moment is None:
        return "-"
    text = schedules.in_zone(moment).strftime("%Y-%m-%d %H:%M %Z")
    if spec.time_zone:
        text += schedules.in_zone(moment, spec.time_zone).strftime(f" (%H:%M {spec.time_zone})")
    return text


def _slot(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no UTC offset")
    return moment


SUPERVISOR_WAIT = 10  # seconds: the least read and write timeout of the supervisor's queries


class SupervisorTerminated(Exception):
    pass


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    raise SupervisorTerminated(f"received {signal.Signals(signum).name}")


class Command(BaseCommand):
    help = "Run a task under supervision (timeout, retries, memory limit) and record every attempt."
    # Declaration errors are reported by the command itself with exit 2, and a bad entry must
    # not stop the other tasks; `manage.py check` still fails on them. Skipping the full system
    # check also keeps cron-time start-up short.
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("task", nargs="?", help="task name (see --list)")
        parser.add_argument(
            "--all", action="store_true", help="every enabled task once, by priority"
        )
        parser.add_argument("--list", action="store_true", help="list the declared tasks")
        parser.add_argument(
            "--due",
            action="store_true",
            help="start every task due now on this host (the installed line; one Django start "
            "per minute, a supervisor forked per due task, at most CRONJOBS_MAX_RUNNING at once)",
        )
        parser.add_argument(
            "--trigger",
            choices=Execution.Trigger.values,
            default=Execution.Trigger.MANUAL,
            help="what started this run (recorded with each attempt)",
        )
        parser.add_argument("--run-id", help=argparse.SUPPRESS)  # set by "run now" callers
        # The slot a catch-up run is for, ISO 8601 (set by the watchdog, which claimed it).
        parser.add_argument("--slot", type=_slot, help=argparse.SUPPRESS)
        # With --slot: the claim token a dispatcher or the watchdog holds for that slot.
        parser.add_argument("--claim", help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        # The jobs this process forks and execs must not inherit its database connection.
        connection_created.connect(db.not_inheritable)
        db.not_inheritable()
        registry.load()
        if options["list"]:
            return self.list_tasks()
        if options["all"] + options["due"] + bool(options["task"]) != 1:
            raise CommandError(
                "name one task, or use --due, --all or --list", returncode=EXIT_USAGE
            )
        if options["claim"] and not options["slot"]:
            raise CommandError("--claim needs --slot", returncode=EXIT_USAGE)
        # cron and `kill` send SIGTERM: record the attempt as failed instead of vanishing.
        signal.signal(signal.SIGTERM, _terminate)
        # A silent database (a partition) fails the supervisor's queries, so its rows go to
        # the spool, instead of holding it for as long as TCP takes to give up.
        bound_waits(max(settings.CRONJOBS_LEASE_TTL, SUPERVISOR_WAIT))
        self.replay_spool()
        if options["due"]:
            report = Dispatcher(self.supervise).run()
            self.stdout.write(report.text())
            sys.exit(EXIT_SUCCEEDED)
        if options["all"]:
            sys.exit(self.run_all(options["trigger"]))
        claimed = Claimed(options["slot"], options["claim"]) if options["claim"] else None
        slot = None if claimed else options["slot"]
        sys.exit(
            self.run_one(options["task"], options["trigger"], options["run_id"], slot, claimed)
        )

    def replay_spool(self) -> None:
        """Results spooled while the database was unreachable go in before anything else."""
        try:
            written = spool.replay()
        except DatabaseError as exc:
            self.stderr.write(f"spool not replayed, database unreachable: {exc}")
            return
        if written:
            self.stdout.write(f"replayed {written} spooled execution(s)")

    def run_one(
        self,
        name: str,
        trigger: str,
        run_id: str | None = None,
        slot: datetime | None = None,
        claimed: Claimed | None = None,
    ) -> int:
        spec = registry.get(name)
        if spec is None:
            raise CommandError(self.unknown_task_message(name), returncode=EXIT_USAGE)
        try:
            first, *downstream = run_chain(
                spec, trigger, run_id=run_id, scheduled_for=slot, claimed=claimed
            )
        except DatabaseError as exc:
            return self.database_down(name, trigger, run_id, exc)
        self.report(first)
        for outcome in downstream:
            self.report(outcome)
        # The task's own outcome, unless a task run after it failed.
        failed = any(each.exit_code == EXIT_FAILED for each in downstream)
        return EXIT_FAILED if failed else first.exit_code

    def supervise(self, spec: TaskSpec, claimed: Claimed) -> int:
        """One slot the dispatcher claimed, in the supervisor it forked."""
        return self.run_one(spec.name, Execution.Trigger.CRON, claimed=claimed)

    def report(self, outcome: Outcome) -> None:
        if outcome.recorded_nothing:  # pinned elsewhere, or no slot now
            self.stderr.write(f"{outcome.task}: not run on this host: {outcome.why}")
            return
        last = outcome.executions[-1]
        detail = f": {last.error}" if last.error else ""
        attempts = f" after {len(outcome.executions)} attempt(s)" if last.attempt > 1 else ""
        stream = self.stdout if outcome.exit_code == EXIT_SUCCEEDED else self.stderr
        stream.write(f"{outcome.task}: {outcome.status}{attempts} (run {outcome.run_id}){detail}")

    def database_down(self, name: str, trigger: str, run_id: str | None, exc: DatabaseError) -> int:
        spool_not_run(name, trigger, run_id, exc)
        self.stderr.write(f"{name}: not run, database unreachable: {exc} (spooled)")
        return EXIT_FAILED

    def run_all(self, trigger: str) -> int:
        """Every task by priority; a task declared `after` others runs when one of them
        succeeds (trigger `after`), never on its own here, so its inputs are fresh."""
        code = EXIT_SUCCEEDED
        done: set[str] = set()
        for spec in registry.by_priority():
            if spec.name in done or spec.after:
                continue
            for outcome in run_chain(spec, trigger, done):
                self.stdout.write(f"{outcome.task}: {outcome.status} (run {outcome.run_id})")
                if outcome.exit_code == EXIT_FAILED:
                    code = EXIT_FAILED
        if registry.errors:
            self.stderr.write(self.errors_text())
            return EXIT_USAGE
        return code

    def unknown_task_message(self, name: str) -> str:
        invalid = [e for e in registry.errors if e.task == name]
        if invalid:
            return "invalid task declaration:\n" + "\n".join(f"  {e}" for e in invalid)
        known = ", ".join(sorted(registry.tasks)) or "(none)"
        message = f"unknown task {name!r}. Known tasks: {known}"
        if registry.errors:
            message += "\n" + self.errors_text()
        return message

    def errors_text(self) -> str:
        return "invalid task declarations:\n" + "\n".join(f"  {e}" for e in registry.errors)

    def list_tasks(self) -> None:
        from cronjobs.models import Task

        enabled = dict(Task.objects.values_list("name", "enabled"))
        rows = [
            ("TASK", "KIND", "SCHEDULE", "NEXT RUN", "PRIO", "TIMEOUT", "ENABLED", "DESCRIPTION")
        ]
        for spec in registry.by_priority():
            flag = enabled.get(spec.name)
            state = "not synced" if flag is None else "yes" if flag else "no"
            rows.append(
                (
                    spec.name,
                    spec.kind,
                    spec.schedule or "-",
                    next_run_text(spec),
                    str(spec.priority),
                    f"{spec.timeout}s",
                    state,
                    spec.description,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.stdout.write("  ".join([*cells, row[-1]]).rstrip())
        if registry.errors:
            self.stderr.write(self.errors_text())
            sys.exit(EXIT_USAGE)
