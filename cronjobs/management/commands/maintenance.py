"""manage.py maintenance add | list | end (docs/operations.md, "Maintenance windows")."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from cronjobs import actions, windows
from cronjobs.management.commands._arguments import EXIT_USAGE
from cronjobs.models import MaintenanceWindow


class Command(BaseCommand):
    help = (
        "Maintenance windows: `skip` skips the scheduled runs of their tasks (a person's run "
        "still goes ahead) and raises no late alert; `mute` lets runs go on and holds their "
        "alerts back until the window ends. Examples: maintenance add --tasks tills,stock_sync "
        "--for 2h --mode skip --reason 'stock take'; maintenance add --all --until "
        "2026-12-01T06:00 --mode mute --reason 'database upgrade'; maintenance list; "
        "maintenance end 12."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        add = commands.add_parser("add", help="open a one-off window now")
        which = add.add_mutually_exclusive_group(required=True)
        which.add_argument("--tasks", help="task names, comma-separated")
        which.add_argument("--all", action="store_true", help="every task")
        when = add.add_mutually_exclusive_group(required=True)
        when.add_argument("--for", dest="length", help="how long: 30m, 2h, 1h30m, 2d")
        when.add_argument("--until", help="ISO 8601 date and time, e.g. 2026-12-01T06:00")
        add.add_argument("--mode", required=True, choices=MaintenanceWindow.Mode.values)
        add.add_argument("--reason", required=True, help="why: shown on every page")
        show = commands.add_parser("list", help="windows on now, coming, and recently over")
        show.add_argument("--all", action="store_true", help="also the recently ended ones")
        end = commands.add_parser("end", help="end a one-off window now")
        end.add_argument("id", type=int, help="the window's number (see list)")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = actions.Actor.for_command("maintenance")
        try:
            getattr(self, f"do_{options['action']}")(actor, options)
        except ValueError as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from None
        except actions.ActionError as exc:
            raise CommandError(exc.message, returncode=EXIT_USAGE) from None

    def do_add(self, actor: actions.Actor, options: dict[str, Any]) -> None:
        names = [MaintenanceWindow.ALL] if options["all"] else options["tasks"].split(",")
        until = windows.window_end(options["length"] or "", options["until"] or "")
        window = actions.open_window(actor, names, options["mode"], options["reason"], until)
        self.stdout.write(
            f"window {window.pk} ({window.mode}) on until {_when(window.ends_at)} "
            f"for {window.tasks}: {window.reason}"
        )

    def do_list(self, actor: actions.Actor, options: dict[str, Any]) -> None:
        calendar = windows.Calendar()
        rows = [w for w in calendar.windows if options["all"] or _current(w, calendar)]
        if not rows:
            self.stdout.write("no maintenance windows")
        for window in rows:
            self.stdout.write(_line(window, calendar))

    def do_end(self, actor: actions.Actor, options: dict[str, Any]) -> None:
        window = MaintenanceWindow.objects.filter(pk=options["id"]).first()
        if window is None:
            raise CommandError(f"no maintenance window {options['id']}", returncode=EXIT_USAGE)
        if actions.end_window(actor, window):
            self.stdout.write(f"window {window.pk} ended")
        else:
            self.stdout.write(f"window {window.pk} was over already")


def _current(window: MaintenanceWindow, calendar: windows.Calendar) -> bool:
    return window.recurring or (window.ends_at is not None and window.ends_at > calendar.now)


def _line(window: MaintenanceWindow, calendar: windows.Calendar) -> str:
    on = calendar.occurrence_at(window, calendar.now)
    if on is not None:
        state = f"ON until {_when(on.end)}"
    elif (start := calendar.next_start(window)) is not None:
        state = f"next {_when(start)}"
    else:
        state = f"ended {_when(window.ends_at)}"
    if window.recurring:
        hours = f"{window.duration / 3600:g} h"
        when = f"'{window.start}' ({window.time_zone}) for {hours}"
    else:
        when = f"{_when(window.starts_at)} to {_when(window.ends_at)} by {window.created_by}"
    return (
        f"{window.label:<16} {window.mode:<4} {state:<34} tasks={window.tasks} "
        f"{when}: {window.reason}"
    )


def _when(moment: Any) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z") if moment else "-"
