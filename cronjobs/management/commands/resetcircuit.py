from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cronjobs import actions
from cronjobs.management.commands._arguments import task_named


class Command(BaseCommand):
    help = "Close a task's circuit breaker by hand and resolve its circuit_open alert."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("task")

    def handle(self, *args: Any, **options: Any) -> None:
        task = task_named(options["task"])
        before = actions.reset_circuit(actions.Actor.for_command("resetcircuit"), task)
        self.stdout.write(f"{task.name}: circuit {before} -> closed")
