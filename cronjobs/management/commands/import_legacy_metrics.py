import time
import zoneinfo
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cronjobs.legacy.history import FORMATS, ImportFailed, file_format, import_file


class Command(BaseCommand):
    help = (
        "Import Smart Cron V2 history (a flagged_products_cron_metrics export: CSV, TSV from "
        "mysql -B, or XLSX) as finished executions. Every row is checked first; a bad row stops "
        "the import before anything is written. Importing the same rows again adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=FORMATS, help="default: from the file name")
        parser.add_argument(
            "--time-zone", help="zone of created_at values without an offset (default TIME_ZONE)"
        )
        parser.add_argument("--dry-run", action="store_true", help="check only; write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file", returncode=2)
        zone = None
        if options["time_zone"]:
            try:
                zone = zoneinfo.ZoneInfo(options["time_zone"])
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise CommandError(
                    f"--time-zone: {options['time_zone']!r} is not a time zone", returncode=2
                ) from None
        started = time.monotonic()
        try:
            fmt = file_format(path, options["format"])
        except ImportFailed as exc:
            raise CommandError(str(exc).strip(), returncode=2) from None
        try:
            report = import_file(path, fmt, zone, dry_run=options["dry_run"])
        except ImportFailed as exc:
            raise CommandError(f"{path.name}: nothing imported:\n{exc}", returncode=1) from None
        span = ""
        if report.first and report.last:
            span = f" from {report.first:%Y-%m-%d %H:%M} to {report.last:%Y-%m-%d %H:%M}"
        verb = "would add" if options["dry_run"] else "added"
        self.stdout.write(
            f"{path.name}: {report.rows} row(s){span}: {verb} {report.added}, "
            f"{report.already_there} already there; "
            f"new retired task(s): {', '.join(report.new_tasks) or 'none'} "
            f"({time.monotonic() - started:.1f} s)"
        )
