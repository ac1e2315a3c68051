"""Callers of the API with every kind of credential, shared by tests/test_api_*.py and
tests/test_prometheus.py. Rows are built with tests/helpers.py."""

from __future__ import annotations

from django.test import Client
from django.utils.crypto import get_random_string

from cronjobs import tokens
from tests.helpers import make_user

CALLERS = ("anonymous", "non_staff", "staff", "staff_writer", "read_only", "read_write", "revoked")


def _session(username: str, staff: bool, perms: tuple[str, ...] = ()) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(username, *perms, staff=staff))
    return client


def _bearer(name: str, read_only: bool, revoked: bool = False) -> Client:
    _, secret = tokens.create_token(name, read_only=read_only)
    if revoked:
        tokens.revoke(name)
    return Client(enforce_csrf_checks=True, headers={"authorization": f"Bearer {secret}"})


def client_for(kind: str) -> Client:
    """A test Client that calls as `kind` (one of CALLERS); session clients enforce CSRF."""
    return {
        "anonymous": lambda: Client(enforce_csrf_checks=True),
        "non_staff": lambda: _session("shopper", staff=False),
        "staff": lambda: _session("viewer", staff=True),
        "staff_writer": lambda: _session("operator", staff=True, perms=("change_task",)),
        "read_only": lambda: _bearer("grafana", read_only=True),
        "read_write": lambda: _bearer("deploy", read_only=False),
        "revoked": lambda: _bearer("old", read_only=False, revoked=True),
    }[kind]()


def post_with_csrf(client: Client, url: str):
    """POST as a browser would: the csrftoken cookie echoed in X-CSRFToken."""
    secret = get_random_string(32)
    client.cookies["csrftoken"] = secret
    return client.post(url, headers={"x-csrftoken": secret})
