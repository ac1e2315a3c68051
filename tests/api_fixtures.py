"""Callers of the API with every kind of credential, and hand-built history, shared by
tests/test_api_*.py and tests/test_prometheus.py."""

from __future__ import annotations

import datetime as dt
import itertools

from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils.crypto import get_random_string

from cronjobs import tokens
from cronjobs.models import Execution, Task

_ids = itertools.count()

CALLERS = ("anonymous", "non_staff", "staff", "staff_writer", "read_only", "read_write", "revoked")


def make_task(name: str = "nightly", **fields) -> Task:
    fields.setdefault("timeout", 60)
    fields.setdefault("slow_after", 48.0)
    return Task.objects.create(name=name, kind="callable", target="x:y", **fields)


def make_exec(task: Task, status: str = "succeeded", at: dt.datetime | None = None, **fields):
    from django.utils import timezone

    fields.setdefault("attempt", 0 if status == "skipped" else 1)
    if status not in ("skipped", "running"):
        fields.setdefault("duration", 1.0)
        fields.setdefault("finished_at", (at or timezone.now()) + dt.timedelta(seconds=1))
    return Execution.objects.create(
        run_id=f"run{next(_ids)}", task=task, status=status, started_at=at or timezone.now(),
        **fields,
    )  # fmt: skip


def _session(username: str, staff: bool, perms: tuple[str, ...] = ()) -> Client:
    user = User.objects.create_user(username, password="pw", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
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
