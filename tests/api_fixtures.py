"""Callers of the API with every kind of credential, shared by tests/test_api_*.py and
tests/test_prometheus.py. Rows are built with tests/helpers.py."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client
from django.utils.crypto import get_random_string

from cronjobs import tokens
from tests.helpers import make_user

CALLERS = (
    "anonymous",
    "non_staff",
    "staff",
    "viewer",
    "staff_writer",
    "read_only",
    "read_write",
    "orphan_token",
    "deactivated_owner",
    "deleted_owner",
    "demoted_owner",
    "revoked",
)
READ_PERMS = ("view_task", "view_execution", "view_alert", "view_maintenancewindow")
WRITE_PERMS = (*READ_PERMS, "change_task", "change_maintenancewindow")


def _session(username: str, staff: bool, perms: tuple[str, ...] = ()) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(username, *perms, staff=staff))
    return client


def _bearer(
    name: str,
    read_only: bool,
    revoked: bool = False,
    owner_perms: tuple[str, ...] | None = WRITE_PERMS,
    owner: str = "",
) -> Client:
    """A token client; its creator holds `owner_perms` (None: made on the command line), and
    `owner` says what became of the creator: "deactivated", "deleted", "demoted" (no longer
    staff) or "" (nothing)."""
    user = None
    if owner_perms is not None:
        user = make_user(f"{name}-owner", *owner_perms)
    _, secret = tokens.create_token(
        name, read_only=read_only, created_by=user, from_command_line=user is None
    )
    if user is not None:
        lose_owner(user, owner)
    if revoked:
        tokens.revoke(name)
    return Client(enforce_csrf_checks=True, headers={"authorization": f"Bearer {secret}"})


def lose_owner(user: User, what: str) -> None:
    """What can become of a token's creator: "deactivated", "deleted", "demoted" (no longer
    staff); "" leaves the user as it is."""
    if what == "deleted":
        user.delete()
    elif what:
        setattr(user, {"deactivated": "is_active", "demoted": "is_staff"}[what], False)
        user.save()


def client_for(kind: str) -> Client:
    """A test Client that calls as `kind` (one of CALLERS); session clients enforce CSRF."""
    return {
        "anonymous": lambda: Client(enforce_csrf_checks=True),
        "non_staff": lambda: _session("shopper", staff=False),
        "staff": lambda: _session("nobody", staff=True),
        "viewer": lambda: _session("viewer", staff=True, perms=READ_PERMS),
        "staff_writer": lambda: _session("operator", staff=True, perms=WRITE_PERMS),
        "read_only": lambda: _bearer("grafana", read_only=True),
        "read_write": lambda: _bearer("deploy", read_only=False),
        "orphan_token": lambda: _bearer("cli", read_only=False, owner_perms=None),
        "deactivated_owner": lambda: _bearer("gone", read_only=False, owner="deactivated"),
        "deleted_owner": lambda: _bearer("deleted", read_only=False, owner="deleted"),
        "demoted_owner": lambda: _bearer("demoted", read_only=False, owner="demoted"),
        "revoked": lambda: _bearer("old", read_only=False, revoked=True),
    }[kind]()


def post_with_csrf(client: Client, url: str):
    """POST as a browser would: the csrftoken cookie echoed in X-CSRFToken."""
    secret = get_random_string(32)
    client.cookies["csrftoken"] = secret
    return client.post(url, headers={"x-csrftoken": secret})
