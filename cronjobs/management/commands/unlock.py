"""manage.py unlock USERNAME... | --ip ADDRESS... | --all: lift django-axes login lockouts."""

from __future__ import annotations

from typing import Any

from axes.utils import reset  # type: ignore[import-untyped]
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Lift login lockouts (too many failed logins) for usernames, addresses, or everyone; "
        "the admin's 'Access attempts' page does the same."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("usernames", nargs="*", help="users whose failed logins to forget")
        parser.add_argument("--ip", action="append", default=[], help="an address to unlock")
        parser.add_argument("--all", action="store_true", help="every lockout and failure")

    def handle(self, *args: Any, **options: Any) -> None:
        usernames, addresses = options["usernames"], options["ip"]
        if options["all"] == bool(usernames or addresses):
            raise CommandError("name usernames and/or --ip addresses, or give --all alone")
        if options["all"]:
            self.stdout.write(f"unlocked everyone ({reset()} failure record(s) removed)")
            return
        for username in usernames:
            self.stdout.write(f"unlocked user {username!r} ({reset(username=username)} removed)")
        for address in addresses:
            self.stdout.write(f"unlocked address {address} ({reset(ip=address)} removed)")
