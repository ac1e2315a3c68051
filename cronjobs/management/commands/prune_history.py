import argparse
import math
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cronjobs.supervisor.pruning import prune, prune_logs

MAX_PAUSE_MS = 60_000
PROGRESS_EVERY = 10.0  # seconds between progress lines of a long prune


def milliseconds(raw: str) -> int:
    """--pause: a whole number of milliseconds, 0 to a minute (argparse turns the error into a
    usage message on the command line and a CommandError from call_command)."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of milliseconds") from None
    if not 0 <= value <= MAX_PAUSE_MS:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and {MAX_PAUSE_MS} ms")
    return value


class Command(BaseCommand):
    help = (
        "Delete executions and resolved alerts older than --days (default 90), in batches of "
        "--batch-size rows with a pause of --pause ms (CRONJOBS_PRUNE_PAUSE_MS, default 100) "
        "between them; delete log files older than --log-days (CRONJOBS_LOG_RETENTION_DAYS, "
        "default 30) and gzip those older than a day."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument(
            "--pause",
            type=milliseconds,
            default=None,
            metavar="MS",
            help="milliseconds to sleep between batches (default: CRONJOBS_PRUNE_PAUSE_MS)",
        )
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
        pause_ms = options["pause"]
        if pause_ms is None:
            pause_ms = settings.CRONJOBS_PRUNE_PAUSE_MS
        counts = prune(
            options["days"], options["batch_size"], pause_ms / 1000, _Reporter(self.stdout)
        )
        self.stdout.write(
            f"deleted {counts['executions']} execution(s) and {counts['alerts']} resolved "
            f"alert(s) older than {options['days']} days"
        )
        files = prune_logs(options["log_days"])
        self.stdout.write(
            f"log files: {len(files['deleted'])} deleted, {len(files['compressed'])} gzipped, "
            f"{len(files['rotated'])} rotated"
        )


class _Reporter:
    """Prints how far a long prune has got every PROGRESS_EVERY seconds, and each table's
    total with its rate (pauses included) when the table is done."""

    def __init__(self, stdout: Any) -> None:
        self.stdout = stdout
        self.since = self.printed = time.monotonic()

    def __call__(self, table: str, deleted: int, walked: float) -> None:
        now = time.monotonic()
        if walked < 1.0 and now - self.printed < PROGRESS_EVERY:
            return
        self.printed = now
        rate = deleted / max(now - self.since, 1e-6)
        self.stdout.write(
            f"{table}: {deleted:,} deleted, {math.floor(walked * 100)}% of the old key range "
            f"walked, {rate:,.0f} rows/s"
        )
        if walked >= 1.0:
            self.since = now  # the next table's rate starts here
