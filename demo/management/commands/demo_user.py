"""manage.py demo_user: the demo's superuser `admin`, created with a random password.

It never touches an existing account: run where `admin` already exists (a production box, an
earlier demo), it changes neither the password nor the flags, says so on stderr and prints
nothing on stdout. A fresh account's password is printed once, alone on stdout, for bin/demo."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import IntegrityError, transaction


class Command(BaseCommand):
    help = (
        "Demo only: create the superuser 'admin' with a random password and print it; an "
        "existing user of that name is left exactly as it is."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        username, password = options["username"], secrets.token_urlsafe(12)
        if create_superuser(username, password):
            self.stdout.write(password)
        else:
            self.stderr.write(
                f"user {username!r} already exists: left unchanged (password and flags as "
                "they were)"
            )


def create_superuser(username: str, password: str) -> bool:
    """Create the superuser unless the name is taken; True if this call created it."""
    users = get_user_model().objects
    if users.filter(username=username).exists():
        return False
    try:
        with transaction.atomic():
            users.create_superuser(username=username, email="", password=password)
    except IntegrityError:  # another process created it between the check and the insert
        return False
    return True
