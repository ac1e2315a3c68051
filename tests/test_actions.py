"""cronjobs.actions: one permission rule and one audit trail for every door (admin, API,
command)."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User

from cronjobs import actions, tokens
from cronjobs.models import Alert, CircuitState, Task
from cronjobs.supervisor import alerts, logs
from cronjobs.supervisor.registry import build_spec
from cronjobs.tasksettings import TaskSpec
from tests.helpers import make_task, make_user

pytestmark = pytest.mark.django_db


def declared(name: str) -> TaskSpec:
    """Any name is a declared task, runnable on this host (run-now's starts are stubbed)."""
    return build_spec(name, "callable", "tests.jobsapp.jobs:succeed", {"timeout": 5}, "test")


@pytest.fixture
def task():
    return make_task("nightly", slow_after=30, schedule="0 2 * * *")


def token_actor(read_only: bool, owner: User | None = None) -> actions.Actor:
    token, _ = tokens.create_token(
        f"t{read_only}", read_only=read_only, created_by=owner, from_command_line=owner is None
    )
    return actions.Actor("api", token=token)


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("non_staff", False),
        ("staff_without_permission", False),
        ("staff_with_change_task", True),
        ("read_only_token", False),
        ("read_write_token", True),
        ("command", True),
    ],
)
def test_enable_disable_permission_matrix(task, who, allowed):
    actor = {
        "non_staff": lambda: actions.Actor(
            "admin", user=make_user("plain", "change_task", staff=False)
        ),
        "staff_without_permission": lambda: actions.Actor("admin", user=make_user("viewer")),
        "staff_with_change_task": lambda: actions.Actor(
            "admin", user=make_user("op", "change_task")
        ),
        "read_only_token": lambda: token_actor(True),
        "read_write_token": lambda: token_actor(False),
        "command": lambda: actions.Actor.for_command("test"),
    }[who]()
    if allowed:
        assert actions.set_enabled(actor, task, False) is True
    else:
        with pytest.raises(actions.Forbidden):
            actions.set_enabled(actor, task, False)
    task.refresh_from_db()
    assert task.enabled is (not allowed)
    assert LogEntry.objects.exists() is allowed


def test_alert_actions_need_the_alert_permission_not_the_task_one(task):
    alert = alerts.raise_alert(task, Alert.Kind.FAILED, "boom")
    task_only = actions.Actor("admin", user=make_user("op", "change_task"))
    with pytest.raises(actions.Forbidden, match=r"cronjobs\.change_alert"):
        actions.resolve(task_only, alert)
    alert_op = actions.Actor("admin", user=make_user("alerts", "change_alert"))
    assert actions.acknowledge(alert_op, alert) is True
    assert actions.resolve(alert_op, alert) is True
    assert actions.resolve(alert_op, alert) is False  # resolved already: nothing to do
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED
    assert alert.acknowledged_by.username == "alerts"


def test_every_door_writes_a_log_entry_naming_who(task):
    owner = make_user("owner", "change_task")
    actions.set_enabled(actions.Actor("admin", user=owner), task, False)
    actions.set_enabled(token_actor(False, owner=owner), task, True)
    actions.reset_circuit(actions.Actor.for_command("resetcircuit"), task)

    entries = list(LogEntry.objects.order_by("pk"))
    assert [e.change_message for e in entries] == [
        "Disabled",
        "Enabled through the api by token 'tFalse'",
        "Circuit reset through the command by manage.py resetcircuit",
    ]
    # A token acts for its creator; a command is recorded under the inactive system account.
    assert entries[1].user == owner
    system = entries[2].user
    assert system.username == actions.SYSTEM_USERNAME and not system.is_active
    assert not system.has_usable_password()
    daily = "\n".join(logs.tail(10))
    assert "nightly disabled through the admin by user 'owner'" in daily
    assert "nightly enabled through the API by token 'tFalse'" in daily
    assert "nightly circuit reset through the command line by manage.py resetcircuit" in daily


def test_unchanged_enable_writes_no_audit(task):
    actor = actions.Actor.for_command("test")
    assert actions.set_enabled(actor, task, True) is False
    assert not LogEntry.objects.exists()


def test_run_now_refuses_disabled_pinned_undeclared_and_retired_tasks_without_starting(
    task, monkeypatch
):
    started = []
    monkeypatch.setattr(
        "cronjobs.supervisor.runner.start_in_background", lambda *a: started.append(a) or "r1"
    )
    monkeypatch.setattr("cronjobs.actions.registry.get", declared)
    actor = actions.Actor.for_command("test")
    Task.objects.filter(pk=task.pk).update(enabled=False)
    task.refresh_from_db()
    with pytest.raises(actions.Refused, match="disabled"):
        actions.run_now(actor, task)
    task.enabled = True
    pinned = build_spec(task.name, "callable", "x:y", {"timeout": 5, "hosts": ["web9"]}, "t")
    monkeypatch.setattr("cronjobs.actions.registry.get", lambda name: pinned)
    with pytest.raises(actions.Refused, match=r"runs on web9 only, not on "):
        actions.run_now(actor, task)
    monkeypatch.setattr("cronjobs.actions.registry.get", lambda name: None)
    with pytest.raises(actions.Refused, match="not declared"):
        actions.run_now(actor, task)
    task.retired_at = task.updated_at
    with pytest.raises(actions.Refused, match="retired"):
        actions.run_now(actor, task)
    assert started == []


def test_reset_circuit_returns_the_state_it_closed(task):
    CircuitState.objects.create(task=task, state=CircuitState.State.OPEN)
    task = Task.objects.get(pk=task.pk)
    before = actions.reset_circuit(actions.Actor.for_command("test"), task)
    assert before == CircuitState.State.OPEN
    assert Task.objects.get(pk=task.pk).circuit_state == CircuitState.State.CLOSED
