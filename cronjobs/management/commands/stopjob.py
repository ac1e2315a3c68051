"""manage.py stopjob <task>: stop a running task's run, on whichever host it runs."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cronjobs import actions
from cronjobs.management.commands._arguments import task_named


class Command(BaseCommand):
    help = (
        "Ask the supervisor running a task (on any host sharing the database) to stop it: "
        "SIGTERM, grace, SIGKILL; recorded as cancelled. Exits 3 when it is not running."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("task")

    def handle(self, *args: Any, **options: Any) -> None:
        task = task_named(options["task"])
        try:
            run_id = actions.stop(actions.Actor.for_command("stopjob"), task)
        except actions.Refused as exc:
            raise CommandError(exc.message, returncode=3) from None
        self.stdout.write(f"{task.name}: stop requested for run {run_id}")
