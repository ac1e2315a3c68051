from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from cronjobs import actions
from cronjobs.management.commands._arguments import task_named


class Command(BaseCommand):
    help = (
        "Snooze one task or all (a deploy, maintenance): alerts are still recorded but nobody "
        "is notified and no late alert is raised until the snooze ends. "
        "Examples: snooze stock_sync --for 30m; snooze --all --until 2026-12-01T18:00; "
        "snooze --all --clear."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("task", nargs="?", help="the task to snooze (or --all)")
        parser.add_argument("--all", action="store_true", help="every current task")
        when = parser.add_mutually_exclusive_group(required=True)
        when.add_argument("--for", dest="duration", help="how long: 30m, 4h, 2d or tomorrow")
        when.add_argument("--until", help="ISO 8601 date and time, e.g. 2026-12-01T08:00")
        when.add_argument("--clear", action="store_true", help="end the snooze now")

    def handle(self, *args: Any, **options: Any) -> None:
        if bool(options["task"]) == options["all"]:
            raise CommandError("name one task or give --all (not both)", returncode=2)
        task = None if options["all"] else task_named(options["task"])
        actor = actions.Actor.for_command("snooze")
        if options["clear"]:
            names = actions.unsnooze(actor, task)
            self.stdout.write(f"snooze cleared: {', '.join(names) or 'nothing was snoozed'}")
            return
        try:
            until = actions.snooze_end(options["duration"] or "", options["until"] or "")
            names = actions.snooze(actor, task, until)
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        except actions.ActionError as exc:
            raise CommandError(exc.message, returncode=2) from None
        when = timezone.localtime(until).strftime("%Y-%m-%d %H:%M %Z")
        self.stdout.write(f"snoozed until {when}: {', '.join(names) or 'no tasks'}")
