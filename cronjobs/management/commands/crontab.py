"""manage.py crontab add | show | remove | check  (docs/operations.md).

Replaces django-crontab's command of the same name (cronjobs comes first in INSTALLED_APPS):
the lines come from the task registry and call `runjob`, not `crontab run <hash>`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cronjobs.supervisor.crontab import (
    CrontabError,
    RegistryCrontab,
    crontab_status,
    environment_problems,
    install_problems,
)


class Command(BaseCommand):
    help = (
        "Install (add), list (show), uninstall (remove) this checkout's crontab lines, one per "
        "scheduled task, or compare them with the task declarations (check; exits 1 when out "
        "of date)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("subcommand", choices=["add", "show", "remove", "check", "run"])
        parser.add_argument("jobhash", nargs="?", help="(django-crontab's `run`; not supported)")
        parser.add_argument(
            "--env-file",
            metavar="PATH",
            help="a dotenv file the installed lines load (CRONJOBS_ENV_FILE): settings and "
            "secrets cron needs, kept out of the crontab",
        )
        parser.add_argument(
            "--per-task",
            action="store_true",
            help="with add: one line per scheduled task (`runjob <task>`, a Django start each) "
            "instead of the host's one dispatcher line (`runjob --due`)",
        )

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        if subcommand == "run":
            raise CommandError("lines installed by this project call `manage.py runjob <task>`")
        before = settings.CRONJOBS_ENV_FILE
        if options["env_file"]:
            path = Path(options["env_file"]).expanduser().resolve()
            if not path.is_file():
                raise CommandError(f"--env-file: no file at {path}", returncode=2)
            settings.CRONJOBS_ENV_FILE = str(path)
        try:
            getattr(self, f"do_{subcommand}")(options)
        except CrontabError as exc:
            raise CommandError(str(exc)) from None
        finally:
            settings.CRONJOBS_ENV_FILE = before

    def do_add(self, options: dict[str, Any]) -> None:
        """Refuses, leaving the crontab untouched, when the lines would not run what this
        process runs (another database, log directory, tasks file, zone or no secret key)."""
        problems = install_problems()
        if problems:
            raise CommandError("not installing:\n" + "\n".join(f"  {p}" for p in problems))
        with RegistryCrontab(out=self.stdout.write, **options) as crontab:  # reads it first
            problems = environment_problems()
            if problems:  # raised inside: the crontab is not written
                raise CommandError("not installing:\n" + "\n".join(f"  {p}" for p in problems))
            crontab.remove_jobs()
            crontab.add_jobs(per_task=options["per_task"])

    def do_show(self, options: dict[str, Any]) -> None:
        with RegistryCrontab(out=self.stdout.write, readonly=True, **options) as crontab:
            crontab.show_jobs()

    def do_remove(self, options: dict[str, Any]) -> None:
        with RegistryCrontab(out=self.stdout.write, **options) as crontab:
            crontab.remove_jobs()

    def do_check(self, options: dict[str, Any]) -> None:
        status = crontab_status()
        differences = environment_problems()
        if status.ok and not differences:
            self.stdout.write("crontab is up to date with the task declarations")
        for message in [*status.messages(), *differences]:
            (self.stdout if status.ok and not differences else self.stderr).write(message)
        if not status.ok or differences:
            sys.exit(1)
