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
    name: str, read_only: bool = False, created_by: User | None = None
) -> tuple[ApiToken, str]:
    """Make a token and return it with its secret, which is not stored and cannot be shown
    again."""
    secret = new_secret()
    token = ApiToken(name=name, read_only=read_only, created_by=created_by)
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
    # A token stops working when its creator is deactivated (owner-less tokens were made on
    # the command line by the host's operator).
    owner_active = Q(created_by=None) | Q(created_by__is_active=True)
    token = (
        ApiToken.objects.filter(owner_active, secret_hash=hash_secret(secret), revoked_at=None)
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
