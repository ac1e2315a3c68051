"""manage.py seed_history [--days 14]: past executions so the demo dashboard has history."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo import history


class Command(BaseCommand):
    help = (
        "Demo only: replace the demo history with realistic past executions of every task "
        "(successes, retries, failures, a timeout, an open circuit with its alerts)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=14, help="how far back (default 14)")
        parser.add_argument("--seed", type=int, default=6, help="random seed (deterministic)")
        parser.add_argument("--circuit-task", default="", help="the task whose circuit is open")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 1:
            raise CommandError("--days must be at least 1")
        try:
            counts = history.seed(options["days"], options["seed"], options["circuit_task"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{counts['executions']} past executions of {counts['tasks']} task(s) over "
            f"{options['days']} days, {counts['alerts']} alerts (host {history.HOST})"
        )
