"""What the suites share that is not a fixture: one way to wait for a real process, and one set
of builders for the supervisor's rows (tasks, executions, alerts) and for staff users.

Builders write plain rows with the shape the runner would give them and let each test say only
what it is about: `make_execution(task, "failed", ago(hours=2), error="boom")`. Fixtures stay in
tests/conftest.py; they may call these."""

from __future__ import annotations

import inspect
import itertools
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.utils import timezone

from cronjobs import history
from cronjobs.models import Alert, Execution, Task

ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")
_names = itertools.count(1)


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str | Callable[[], str] | None = None,
) -> T:
    """Poll `predicate` until it returns something truthy, and return that. For real processes
    and daemons only: where the clock is the subject, travel in time instead.

    On timeout the test fails naming what it waited for: `what` (a callable is asked then, so
    it can describe the state at that moment), or else the predicate's own source."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            described = what() if callable(what) else what or _source_of(predicate)
            pytest.fail(f"gave up after {timeout:g} s waiting for {described}")
        time.sleep(interval)
    return value


def _source_of(predicate: Callable[..., Any]) -> str:
    """A lambda is described by its line of source; anything else by its name."""
    name = getattr(predicate, "__qualname__", repr(predicate))
    if getattr(predicate, "__name__", "") == "<lambda>":
        try:
            return inspect.getsource(predicate).strip()
        except OSError:  # defined where no source is kept
            pass
    return name


def ago(**delta: float) -> datetime:
    """`ago(hours=2)`: that long before now (the travelled now, under time-machine)."""
    return timezone.now() - timedelta(**delta)


TASK_DEFAULTS = {
    "kind": Task.Kind.CALLABLE,
    "target": "tests.jobsapp.jobs:succeed",
    "schedule": "*/30 * * * *",
    "timeout": 60,
    "slow_after": 48.0,
}


def make_task(name: str | None = None, **fields: Any) -> Task:
    """A task row as `synctasks` would leave a declaration; unnamed ones get a fresh name."""
    fields = {**TASK_DEFAULTS, **fields}
    return Task.objects.create(name=name or f"task_{next(_names)}", **fields)


def make_execution(
    task: Task, status: str = "succeeded", started_at: datetime | None = None, **fields: Any
) -> Execution:
    """One attempt of `task`, or a skipped invocation, shaped as the runner records them: it
    started five minutes ago unless told; an attempt that ended took one second unless told;
    a skip is attempt 0 and ends as it starts."""
    started_at = started_at if started_at is not None else ago(minutes=5)
    fields.setdefault("run_id", uuid.uuid4().hex)
    if status == Execution.Status.SKIPPED:
        fields = {"attempt": 0, "finished_at": started_at, "duration": 0.0, **fields}
    elif status != Execution.Status.RUNNING:
        fields = {"finished_at": started_at + timedelta(seconds=1), "duration": 1.0, **fields}
    row = Execution(task=task, status=status, started_at=started_at, **fields)
    history.save(row)
    return row


def make_alert(task: Task, kind: str = "failed", state: str = "open", **fields: Any) -> Alert:
    """An alert of `task`; an unresolved one holds the task's `open_key` slot for its kind, as
    cronjobs/supervisor/alerts.py writes it."""
    open_key = None if state == Alert.State.RESOLVED else f"{task.pk}:{kind}"
    fields.setdefault("message", f"{kind} on {task.name}")
    return Alert.objects.create(task=task, kind=kind, state=state, open_key=open_key, **fields)


def make_user(username: str, *codenames: str, staff: bool = True) -> User:
    """A user (password "pw") holding exactly these cronjobs permissions, e.g. "view_task".
    Read back afresh, so no permission is cached on the object."""
    user = User.objects.create_user(username, password="pw", is_staff=staff)
    perms = Permission.objects.filter(content_type__app_label="cronjobs", codename__in=codenames)
    assert perms.count() == len(codenames), codenames
    user.user_permissions.set(perms)
    return User.objects.get(pk=user.pk)


def alive(pid: int) -> bool:
    """Is the process there and not a zombie?"""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def database_url() -> str:
    """The URL of the test database, for child `manage.py` processes."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    host, port = s["HOST"] or "127.0.0.1", s["PORT"] or 3306
    return f"mysql://{s['USER']}:{s['PASSWORD']}@{host}:{port}/{s['NAME']}"


def queries_of(work: Callable[[], object]) -> int:
    """How many SQL queries `work` runs."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        work()
    return len(captured)


def add_scheduled_tasks(count: int, **fields: Any) -> list[Task]:
    """`count` more daily tasks, each with a success at 07:05 today and an open `slow` alert:
    what every page and pass that reads all tasks finds per task (issue 26's query counts)."""
    added = []
    for _ in range(count):
        task = make_task(schedule="5 7 * * *", **fields)
        make_execution(task, "succeeded", ago(hours=1))
        make_alert(task, "slow", severity="warning")
        added.append(task)
    return added


def declared_tasks_toml(count: int, first: int = 0) -> str:
    """A tasks file declaring `count` command tasks, daily at spread minutes."""
    return "".join(
        f'[tasks.declared_{n:05d}]\ncommand = ["true"]\nschedule = "{n % 60} {n % 24} * * *"\n'
        "timeout = 60\n\n"
        for n in range(first, first + count)
    )
