"""manage.py apitoken create | list | revoke"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from cronjobs import tokens
from cronjobs.models import ApiToken


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("apitoken", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_create_prints_a_working_secret_once():
    out, err = run("create", "grafana", "--read-only")
    secret = out.strip()
    assert "shown only once" in err
    assert "read-only" in err
    token = tokens.authenticate(secret)
    assert token is not None
    assert token.name == "grafana"
    assert token.read_only is True


@pytest.mark.django_db
def test_create_without_flag_makes_a_read_write_token():
    out, _ = run("create", "deploy")
    assert tokens.authenticate(out.strip()).read_only is False


@pytest.mark.django_db
def test_create_with_a_taken_name_fails_naming_it():
    run("create", "ops")
    with pytest.raises(CommandError, match="ops"):
        run("create", "ops")
    assert ApiToken.objects.count() == 1


@pytest.mark.django_db
def test_list_shows_prefix_scope_and_state_but_never_the_secret():
    secret = run("create", "ops")[0].strip()
    run("create", "grafana", "--read-only")
    run("revoke", "grafana")
    out, _ = run("list")
    lines = out.splitlines()
    assert len(lines) == 2
    assert "grafana" in lines[0]
    assert "read-only" in lines[0]
    assert "revoked" in lines[0]
    assert "ops" in lines[1]
    assert secret[:8] in lines[1]
    assert "active" in lines[1]
    assert secret not in out


@pytest.mark.django_db
def test_list_without_tokens_says_so():
    assert run("list")[0].strip() == "no API tokens"


@pytest.mark.django_db
def test_revoke_stops_the_token_and_unknown_names_fail():
    secret = run("create", "ops")[0].strip()
    out, _ = run("revoke", "ops")
    assert "revoked" in out
    assert tokens.authenticate(secret) is None
    with pytest.raises(CommandError, match="no active token named 'nope'"):
        run("revoke", "nope")
