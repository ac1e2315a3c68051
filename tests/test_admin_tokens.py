"""API tokens in the admin: adding one shows its secret once; the action revokes."""

from __future__ import annotations

import pytest

from cronjobs import tokens
from cronjobs.models import ApiToken


@pytest.mark.django_db
def test_adding_a_token_shows_a_working_secret_once(admin_client, admin_user):
    response = admin_client.post(
        "/admin/cronjobs/apitoken/add/", {"name": "grafana", "read_only": "on"}, follow=True
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    secret_message = next(m for m in messages if "Secret for 'grafana'" in m)
    secret = secret_message.rsplit(": ", 1)[1]
    token = tokens.authenticate(secret)
    assert token is not None
    assert (token.name, token.read_only, token.created_by) == ("grafana", True, admin_user)

    change = admin_client.get(f"/admin/cronjobs/apitoken/{token.pk}/change/")
    assert secret not in change.content.decode()
    assert token.prefix in change.content.decode()


@pytest.mark.django_db
def test_revoke_action_stops_tokens(admin_client):
    token, secret = tokens.create_token("old")
    response = admin_client.post(
        "/admin/cronjobs/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
        follow=True,
    )
    assert "Revoked 1 token(s)." in response.content.decode()
    assert tokens.authenticate(secret) is None
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
