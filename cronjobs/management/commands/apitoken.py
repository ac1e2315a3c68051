"""manage.py apitoken create NAME [--read-only] [--user USERNAME] | list | revoke NAME

With --user the token acts with that user's permissions and dies with the user (deleted,
deactivated, or no longer staff); without it, it acts for the host's operator, and this command
is the only way to make such a token."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cronjobs import tokens
from cronjobs.models import ApiToken


class Command(BaseCommand):
    help = "Create, list and revoke API tokens (Authorization: Bearer <secret>)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="make a token and print its secret once")
        create.add_argument("name")
        create.add_argument("--read-only", action="store_true", help="may read, never change")
        create.add_argument(
            "--user",
            metavar="USERNAME",
            help="act with this staff user's permissions, and stop working with the user",
        )
        actions.add_parser("list", help="every token, with its prefix and state")
        revoke = actions.add_parser("revoke", help="stop a token from working")
        revoke.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"handle_{options['action']}")(options)

    def handle_create(self, options: dict[str, Any]) -> None:
        user = _staff_user(options["user"]) if options["user"] is not None else None
        try:
            token, secret = tokens.create_token(
                options["name"],
                read_only=options["read_only"],
                created_by=user,
                from_command_line=user is None,
            )
        except ValidationError as exc:
            raise CommandError(
                f"cannot create token {options['name']!r}: {_messages(exc)}"
            ) from None
        scope = "read-only" if token.read_only else "read-write"
        whose = f"acting as user {user.get_username()!r}" if user else "for the host's operator"
        self.stderr.write(
            f"created {scope} token {token.name!r} {whose}; its secret is shown only once:"
        )
        self.stdout.write(secret)

    def handle_list(self, options: dict[str, Any]) -> None:
        rows = ApiToken.objects.order_by("name")
        if not rows:
            self.stdout.write("no API tokens")
        for token in rows.select_related("created_by"):
            scope = "read-only" if token.read_only else "read-write"
            state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
            if token.is_active and token.owner_gone:
                state = "dead: creator gone"
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            self.stdout.write(
                f"{token.name:<24} {token.prefix}…  {scope:<10} {state:<24} last used {used}"
            )

    def handle_revoke(self, options: dict[str, Any]) -> None:
        if not tokens.revoke(options["name"]):
            raise CommandError(f"no active token named {options['name']!r}")
        self.stdout.write(f"revoked token {options['name']!r}")


def _staff_user(username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"no user named {username!r}")
    if not (user.is_active and user.is_staff):
        raise CommandError(f"user {username!r} is not active staff: its token could not work")
    return user


def _messages(exc: ValidationError) -> str:
    return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
