"""manage.py seed_history [--days 14] [--if-empty]: past executions of the demo's own tasks, so
the demo dashboard has history (demo/history.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo import history


class Command(BaseCommand):
    help = (
        "Demo only: replace the demo history with realistic past executions of the demo's own "
        "tasks (successes, retries, failures, a timeout, an open circuit with its alerts); "
        "tasks you declared get none."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=14, help="how far back (default 14)")
        parser.add_argument("--seed", type=int, default=6, help="random seed (deterministic)")
        parser.add_argument("--circuit-task", default="", help="the task whose circuit is open")
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing when the history has any row (a restarted demo keeps its own)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 1:
            raise CommandError("--days must be at least 1")
        if options["if_empty"] and history.has_history():
            self.stdout.write("history already recorded: left as it is (no past runs invented)")
            return
        try:
            counts = history.seed(options["days"], options["seed"], options["circuit_task"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{counts['executions']} past executions of {counts['tasks']} task(s) over "
            f"{options['days']} days, {counts['alerts']} alerts (host {history.HOST})"
        )
