import datetime as dt
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from cronjobs import history
from cronjobs.management.commands._arguments import EXIT_USAGE


class Command(BaseCommand):
    help = (
        "Recompute the per-hour and per-day rollups from the execution history, for every "
        "local day from --since (YYYY-MM-DD; default: the oldest execution) to today. Days "
        "whose executions were pruned keep no rollups: rebuild only what history is left."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", metavar="YYYY-MM-DD", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        since = _date(options["since"]) if options["since"] else None
        started = time.monotonic()
        written = history.rebuild(since)
        where = f"since {since}" if since else "for the whole history"
        self.stdout.write(
            f"rebuilt {written} rollup row(s) {where} in {time.monotonic() - started:.1f} s"
        )


def _date(text: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--since must be a date as YYYY-MM-DD, not {text!r}", returncode=EXIT_USAGE
        ) from None
    if day > timezone.localdate():
        raise CommandError(f"--since {day} is in the future", returncode=EXIT_USAGE)
    return day
