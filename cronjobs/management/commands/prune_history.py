from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cronjobs.supervisor.pruning import prune, prune_logs


class Command(BaseCommand):
    help = (
        "Delete executions and resolved alerts older than --days (default 90), in batches; "
        "delete log files older than --log-days (CRONJOBS_LOG_RETENTION_DAYS, default 30) "
        "and gzip those older than a day."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--log-days", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 1:
            raise CommandError(f"--days must be at least 1, not {options['days']}", returncode=2)
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1", returncode=2)
        if options["log_days"] is not None and options["log_days"] < 1:
            raise CommandError(
                f"--log-days must be at least 1, not {options['log_days']}", returncode=2
            )
        counts = prune(options["days"], options["batch_size"])
        self.stdout.write(
            f"deleted {counts['executions']} execution(s) and {counts['alerts']} resolved "
            f"alert(s) older than {options['days']} days"
        )
        files = prune_logs(options["log_days"])
        self.stdout.write(
            f"log files: {len(files['deleted'])} deleted, {len(files['compressed'])} gzipped, "
            f"{len(files['rotated'])} rotated"
        )
