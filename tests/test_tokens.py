"""cronjobs.tokens: secrets are shown once, stored hashed, and stop working when revoked."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError

from cronjobs import tokens
from cronjobs.models import ApiToken

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@pytest.mark.django_db
def test_only_a_hash_of_the_secret_is_stored():
    token, secret = tokens.create_token("grafana", read_only=True, from_command_line=True)
    stored = ApiToken.objects.get(pk=token.pk)
    assert len(secret) >= 40
    assert secret not in {stored.secret_hash, stored.prefix, stored.name}
    assert stored.secret_hash == tokens.hash_secret(secret)
    assert stored.prefix == secret[:8]
    assert stored.read_only is True


@pytest.mark.django_db
def test_authenticate_finds_the_token_and_records_its_use():
    token, secret = tokens.create_token("ops", from_command_line=True)
    with time_machine.travel(NOW, tick=False):
        assert tokens.authenticate(secret) == token
    assert ApiToken.objects.get(pk=token.pk).last_used_at == NOW


@pytest.mark.django_db
def test_last_used_is_written_at_most_once_a_minute():
    token, secret = tokens.create_token("prometheus", from_command_line=True)
    with time_machine.travel(NOW, tick=False):
        tokens.authenticate(secret)
    with time_machine.travel(NOW + dt.timedelta(seconds=30), tick=False):
        tokens.authenticate(secret)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == NOW
    with time_machine.travel(NOW + dt.timedelta(minutes=2), tick=False):
        tokens.authenticate(secret)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == NOW + dt.timedelta(minutes=2)


@pytest.mark.django_db
@pytest.mark.parametrize("secret", ["", "not-a-token", "x" * 43])
def test_unknown_secrets_do_not_authenticate(secret):
    tokens.create_token("ops", from_command_line=True)
    assert tokens.authenticate(secret) is None


@pytest.mark.django_db
def test_revoked_token_stops_working():
    _, secret = tokens.create_token("old", from_command_line=True)
    assert tokens.revoke("old") is True
    assert tokens.authenticate(secret) is None
    assert tokens.revoke("old") is False  # already revoked


@pytest.mark.django_db
def test_names_are_unique():
    tokens.create_token("ops", from_command_line=True)
    with pytest.raises(ValidationError, match="name"):
        tokens.create_token("ops", from_command_line=True)


@pytest.mark.django_db
def test_each_token_gets_a_different_secret():
    _, first = tokens.create_token("a", from_command_line=True)
    _, second = tokens.create_token("b", from_command_line=True)
    assert first != second
