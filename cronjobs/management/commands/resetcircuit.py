from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cronjobs.models import Task
from cronjobs.supervisor import circuit


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
        before = circuit.state_of(task).state
        circuit.reset(task, by="manage.py resetcircuit")
        self.stdout.write(f"{task.name}: circuit {before} -> closed")
