"""Builders for the admin and dashboard suites: tasks, executions and users with exact perms."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

from django.contrib.auth.models import Permission, User
from django.utils import timezone

from cronjobs.models import Execution, Task

_seq = itertools.count(1)


def task(name: str | None = None, **fields) -> Task:
    fields = {"kind": "callable", "target": "tests.jobsapp.jobs:succeed", "timeout": 60,
              "slow_after": 48.0, "schedule": "*/30 * * * *", **fields}  # fmt: skip
    return Task.objects.create(name=name or f"task_{next(_seq)}", **fields)


def execution(task: Task, status: str = "succeeded", ago: dt.timedelta | None = None, **fields):
    started = timezone.now() - (ago if ago is not None else dt.timedelta(minutes=5))
    fields.setdefault("attempt", 0 if status == "skipped" else 1)
    fields.setdefault("run_id", uuid.uuid4().hex)
    if status not in ("running",):
        fields.setdefault("finished_at", started + dt.timedelta(seconds=2))
        fields.setdefault("duration", 2.0)
    return Execution.objects.create(task=task, status=status, started_at=started, **fields)


def staff(username: str, *codenames: str) -> User:
    """A staff user holding exactly these cronjobs permissions (e.g. 'view_task')."""
    user = User.objects.create_user(username, password="pw", is_staff=True)
    perms = Permission.objects.filter(content_type__app_label="cronjobs", codename__in=codenames)
    assert perms.count() == len(codenames), codenames
    user.user_permissions.set(perms)
    return user
