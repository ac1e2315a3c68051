from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cronjobs import actions
from cronjobs.models import Task


class Command(BaseCommand):
    help = "Close a task's circuit breaker by hand and resolve its circuit_open alert."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("task")

    def handle(self, *args: Any, **options: Any) -> None:
        task = Task.objects.filter(name=options["task"]).first()
        if task is None:
            known = ", ".join(Task.objects.values_list("name", flat=True)) or "(none)"
            raise CommandError(
                f"unknown task {options['task']!r}. Known tasks: {known}", returncode=2
            )
        before = actions.reset_circuit(actions.Actor.for_command("resetcircuit"), task)
        self.stdout.write(f"{task.name}: circuit {before} -> closed")
