"""API tokens: creation, lookup by bearer secret, revocation. The admin, `manage.py apitoken`
and the API's authentication all go through here."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone

from cronjobs.models import ApiToken

PREFIX_LENGTH = 8
# Recording every request's use would turn each Prometheus scrape into a write; a minute's
# precision is plenty for "is this token still used?".
LAST_USED_PRECISION = dt.timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    """SHA-256 is enough here (unlike passwords): secrets are 256 random bits, not guessable."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def create_token(
    name: str,
    read_only: bool = False,
    created_by: User | None = None,
    from_command_line: bool = False,
) -> tuple[ApiToken, str]:
    """Make a token and return it with its secret, which is not stored and cannot be shown
    again. A token acts for its creator; only the command line may make one with no creator
    (`from_command_line`), which acts for the host's operator."""
    if (created_by is None) != from_command_line:
        raise ValueError("a token has a creator, or is made on the command line without one")
    secret = new_secret()
    token = ApiToken(
        name=name, read_only=read_only, created_by=created_by, from_command_line=from_command_line
    )
    set_secret(token, secret)
    token.full_clean()
    token.save()
    return token, secret


def set_secret(token: ApiToken, secret: str) -> None:
    token.prefix = secret[:PREFIX_LENGTH]
    token.secret_hash = hash_secret(secret)


def authenticate(secret: str) -> ApiToken | None:
    """The active token whose secret this is, or None; records when it was last used."""
    if not secret:
        return None
    # A token dies with its creator: deleted (created_by is then NULL), deactivated, or no
    # longer staff. Only a token made on the command line without --user has no creator.
    owner_present = Q(created_by=None, from_command_line=True) | Q(
        created_by__is_active=True, created_by__is_staff=True
    )
    token = (
        ApiToken.objects.filter(owner_present, secret_hash=hash_secret(secret), revoked_at=None)
        .select_related("created_by")
        .first()
    )
    if token is not None:
        _touch(token)
    return token


def _touch(token: ApiToken) -> None:
    now = timezone.now()
    stale = Q(last_used_at=None) | Q(last_used_at__lt=now - LAST_USED_PRECISION)
    ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)


def revoke(name: str) -> bool:
    """Revoke the named token; False when there is no active token by that name."""
    return bool(
        ApiToken.objects.filter(name=name, revoked_at=None).update(revoked_at=timezone.now())
    )
