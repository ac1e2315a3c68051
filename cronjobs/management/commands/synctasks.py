from typing import Any

from django.core.management.base import BaseCommand, CommandError

from cronjobs.supervisor.registry import registry
from cronjobs.supervisor.sync import sync_all


class Command(BaseCommand):
    help = "Mirror declared tasks (code and the TOML tasks file) into the Task table."

    def handle(self, *args: Any, **options: Any) -> None:
        report = sync_all()
        for label in ("created", "updated", "retired"):
            if report[label]:
                self.stdout.write(f"{label}: {', '.join(report[label])}")
        if report["windows"]:
            self.stdout.write(f"maintenance windows changed: {', '.join(report['windows'])}")
        self.stdout.write(
            f"{len(registry.tasks)} task(s) declared, {len(report['unchanged'])} unchanged"
        )
        if registry.errors:
            raise CommandError(
                "invalid declarations (not synced):\n"
                + "\n".join(f"  {e}" for e in registry.errors),
                returncode=2,
            )
