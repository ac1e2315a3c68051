"""API tokens in the admin: adding one shows its secret once in the page body (never in a
cookie); read-write tokens need change_task; read_only is fixed; the action revokes."""

from __future__ import annotations

import pytest
from django.test import Client

from cronjobs import tokens
from cronjobs.models import ApiToken, Task
from tests.helpers import make_task, make_user


def _secret_from(response) -> str:
    page = response.content.decode()
    return page.split('<code id="token-secret">', 1)[1].split("</code>", 1)[0]


@pytest.mark.django_db
def test_adding_a_token_shows_a_working_secret_once(admin_client, admin_user):
    response = admin_client.post(
        "/admin/cronjobs/apitoken/add/", {"name": "grafana", "read_only": "on"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = _secret_from(response)
    token = tokens.authenticate(secret)
    assert token is not None
    assert (token.name, token.read_only, token.created_by) == ("grafana", True, admin_user)
    assert all(secret not in morsel.value for morsel in response.cookies.values())
    assert all(secret not in str(m) for m in response.context["messages"])

    change = admin_client.get(f"/admin/cronjobs/apitoken/{token.pk}/change/")
    assert secret not in change.content.decode()
    assert token.prefix in change.content.decode()


def _staff_client(*perms: str) -> Client:
    client = Client()
    client.force_login(make_user("clerk", *perms))
    return client


@pytest.mark.django_db
def test_without_change_task_a_new_token_is_read_only_whatever_is_posted():
    client = _staff_client("add_apitoken", "view_apitoken")
    response = client.post("/admin/cronjobs/apitoken/add/", {"name": "sneaky"})  # unticked
    assert response.status_code == 200
    token = ApiToken.objects.get(name="sneaky")
    assert token.read_only is True
    make_task("nightly")
    api = Client(headers={"authorization": f"Bearer {_secret_from(response)}"})
    assert api.post("/api/tasks/nightly/disable/").status_code == 403
    assert Task.objects.get(name="nightly").enabled is True


@pytest.mark.django_db
def test_with_change_task_a_read_write_token_can_be_made():
    client = _staff_client("add_apitoken", "view_apitoken", "change_task")
    response = client.post("/admin/cronjobs/apitoken/add/", {"name": "deploy"})
    assert ApiToken.objects.get(name="deploy").read_only is False
    assert tokens.authenticate(_secret_from(response)) is not None


@pytest.mark.django_db
def test_read_only_cannot_be_unticked_on_an_existing_token():
    token, _secret = tokens.create_token("grafana", read_only=True, from_command_line=True)
    client = _staff_client("change_apitoken", "view_apitoken", "change_task")
    client.post(f"/admin/cronjobs/apitoken/{token.pk}/change/", {"name": "grafana"})
    assert ApiToken.objects.get(pk=token.pk).read_only is True


@pytest.mark.django_db
def test_a_token_loses_what_its_creator_loses():
    owner = make_user("ops", "view_task", "view_execution", "change_task")
    _, secret = tokens.create_token("deploy", read_only=False, created_by=owner)
    make_task("nightly")
    api = Client(headers={"authorization": f"Bearer {secret}"})
    assert api.post("/api/tasks/nightly/disable/").status_code == 200
    owner.user_permissions.remove(*owner.user_permissions.filter(codename="change_task"))
    refused = api.post("/api/tasks/nightly/enable/")
    assert refused.status_code == 403
    assert "cronjobs.change_task" in refused.json()["error"]
    assert api.get("/api/tasks/").status_code == 200
    owner.is_active = False
    owner.save()
    assert api.get("/api/tasks/").status_code == 401


@pytest.mark.django_db
def test_revoke_action_stops_tokens(admin_client):
    token, secret = tokens.create_token("old", from_command_line=True)
    response = admin_client.post(
        "/admin/cronjobs/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
        follow=True,
    )
    assert "Revoked 1 token(s)." in response.content.decode()
    assert tokens.authenticate(secret) is None
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None


@pytest.mark.django_db
def test_the_token_list_says_whom_each_token_acts_for(admin_client):
    gone = make_user("gone", "view_task")
    tokens.create_token("cli", from_command_line=True)
    tokens.create_token("orphaned", created_by=gone)
    tokens.create_token("demoted", created_by=make_user("demoted", "view_task", staff=False))
    gone.delete()
    page = admin_client.get("/admin/cronjobs/apitoken/").content.decode()
    assert "a token with no creator can only be made on the host with" in page
    assert "manage.py apitoken create" in page
    assert "the host&#x27;s operator (manage.py apitoken create)" in page
    assert "nobody: its creator was deleted (token dead)" in page
    assert "demoted (no longer active staff: token dead)" in page
