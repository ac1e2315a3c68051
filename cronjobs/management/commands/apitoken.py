"""manage.py apitoken create NAME [--read-only] | list | revoke NAME"""

from __future__ import annotations

from typing import Any

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
        actions.add_parser("list", help="every token, with its prefix and state")
        revoke = actions.add_parser("revoke", help="stop a token from working")
        revoke.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"handle_{options['action']}")(options)

    def handle_create(self, options: dict[str, Any]) -> None:
        try:
            token, secret = tokens.create_token(options["name"], read_only=options["read_only"])
        except ValidationError as exc:
            raise CommandError(
                f"cannot create token {options['name']!r}: {_messages(exc)}"
            ) from None
        scope = "read-only" if token.read_only else "read-write"
        self.stderr.write(f"created {scope} token {token.name!r}; its secret is shown only once:")
        self.stdout.write(secret)

    def handle_list(self, options: dict[str, Any]) -> None:
        rows = ApiToken.objects.order_by("name")
        if not rows:
            self.stdout.write("no API tokens")
        for token in rows:
            scope = "read-only" if token.read_only else "read-write"
            state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            self.stdout.write(
                f"{token.name:<24} {token.prefix}…  {scope:<10} {state:<24} last used {used}"
            )

    def handle_revoke(self, options: dict[str, Any]) -> None:
        if not tokens.revoke(options["name"]):
            raise CommandError(f"no active token named {options['name']!r}")
        self.stdout.write(f"revoked token {options['name']!r}")


def _messages(exc: ValidationError) -> str:
    return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
