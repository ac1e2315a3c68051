"""manage.py apitoken create | list | revoke"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from cronjobs import tokens
from cronjobs.models import ApiToken
from tests.helpers import make_user


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


@pytest.mark.django_db
def test_create_with_user_acts_as_that_user_and_dies_with_it():
    owner = make_user("deployer", "view_task", "change_task")
    out, err = run("create", "deploy", "--user", "deployer")
    token = tokens.authenticate(out.strip())
    assert "acting as user 'deployer'" in err
    assert token is not None and token.created_by == owner and not token.from_command_line
    client = Client(headers={"authorization": f"Bearer {out.strip()}"})
    assert client.get("/api/tasks/").status_code == 200
    owner.delete()
    assert client.get("/api/tasks/").status_code == 401
    listed, _ = run("list")
    assert "dead: creator gone" in listed


@pytest.mark.django_db
def test_create_without_user_is_the_only_creator_less_token():
    out, err = run("create", "cli")
    assert "for the host's operator" in err
    assert tokens.authenticate(out.strip()).from_command_line is True
    with pytest.raises(ValueError, match="command line"):
        tokens.create_token("sneaky")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("username", "message"),
    [("nobody", "no user named 'nobody'"), ("shopper", "'shopper' is not active staff")],
)
def test_create_refuses_a_user_whose_token_could_not_work(username, message):
    make_user("shopper", staff=False)
    with pytest.raises(CommandError, match=message):
        run("create", "deploy", "--user", username)
    assert not ApiToken.objects.exists()
