from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cronjobs.supervisor.pruning import prune


class Command(BaseCommand):
    help = "Delete executions and resolved alerts older than --days (default 90), in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 1:
            raise CommandError(f"--days must be at least 1, not {options['days']}", returncode=2)
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1", returncode=2)
        counts = prune(options["days"], options["batch_size"])
        self.stdout.write(
            f"deleted {counts['executions']} execution(s) and {counts['alerts']} resolved "
            f"alert(s) older than {options['days']} days"
        )
