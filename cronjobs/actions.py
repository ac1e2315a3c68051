"""Operator actions: enable, disable, run now, reset the circuit, acknowledge and resolve,
snooze and unsnooze.

Each action is one function that the admin, the JSON API and the management commands all call.
It checks the actor's permission (one rule for every door), does the change, and writes the
audit trail: an admin `LogEntry` naming the user, or the token or command, plus a line in the
daily log (docs/operations.md, "Audit trail"). Doors only translate the outcome: an admin
message, a JSON status code, a command's exit status.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone

from cronjobs.models import Alert, ApiToken, Execution, Task
from cronjobs.supervisor import alerts, circuit, logs, runner
from cronjobs.supervisor.registry import registry

TASK_PERMISSION = "cronjobs.change_task"
ALERT_PERMISSION = "cronjobs.change_alert"
# Commands and owner-less tokens have no user; LogEntry needs one, so they are recorded under
# this inactive account (it cannot log in) with the command or token named in the message.
SYSTEM_USERNAME = "flagged-cron-system"


TRIGGERS = {
    "admin": Execution.Trigger.ADMIN,
    "api": Execution.Trigger.API,
    "command": Execution.Trigger.MANUAL,
}


class ActionError(Exception):
    """An action that was not done; `message` says why, for the operator."""

    status = 409

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class Forbidden(ActionError):
    status = 403


class Refused(ActionError):
    """Allowed, but not possible now (a retired or disabled task)."""


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who asks: a user (admin or API session), an API token, or a management command."""

    door: str  # "admin", "api" or "command"
    user: Any = None
    token: ApiToken | None = None
    command: str = ""

    @classmethod
    def from_request(cls, request: Any, door: str = "admin") -> Actor:
        token = getattr(request, "api_token", None)
        if token is not None:
            return cls("api", token=token)
        return cls(door, user=request.user)

    @classmethod
    def for_command(cls, name: str) -> Actor:
        return cls("command", command=name)

    def __str__(self) -> str:
        if self.command:
            return f"manage.py {self.command}"
        if self.token is not None:
            return f"token {self.token.name!r}"
        return f"user {self.user.get_username()!r}"

    def require(self, permission: str) -> None:
        """The one permission rule: commands run with shell access to the host and may do
        anything; a token may write unless it is read-only; a user needs to be active staff
        with the permission."""
        if self.command:
            return
        if self.token is not None:
            if self.token.read_only:
                raise Forbidden(f"token {self.token.name!r} is read-only")
            return
        user = self.user
        if not (user.is_authenticated and user.is_active and user.is_staff):
            raise Forbidden("staff access required")
        if not user.has_perm(permission):
            raise Forbidden(f"permission {permission} required")


def set_enabled(actor: Actor, task: Task, enabled: bool) -> bool:
    """Enable or disable a task; False when it already was."""
    actor.require(TASK_PERMISSION)
    changed = Task.objects.filter(pk=task.pk).exclude(enabled=enabled)
    if not changed.update(enabled=enabled, updated_at=timezone.now()):
        return False
    task.enabled = enabled
    _audit(actor, task, "Enabled" if enabled else "Disabled")
    return True


def run_now(actor: Actor, task: Task) -> str:
    """Start a supervised run in the background and return its run id."""
    actor.require(TASK_PERMISSION)
    if task.is_retired:
        raise Refused(f"task {task.name!r} is retired: it is no longer declared")
    if not task.enabled:
        raise Refused(f"task {task.name!r} is disabled: enable it first")
    if registry.get(task.name) is None:
        raise Refused(f"task {task.name!r} is not declared on this host: run synctasks")
    trigger = TRIGGERS[actor.door]
    run_id = runner.start_in_background(task.name, trigger)
    _audit(actor, task, f"Run now (run {run_id})")
    return run_id


def reset_circuit(actor: Actor, task: Task) -> str:
    """Close the task's circuit breaker; returns the state it was in."""
    actor.require(TASK_PERMISSION)
    before = task.circuit_state
    circuit.reset(task, by=_name(actor))
    _audit(actor, task, "Circuit reset")
    return before


def acknowledge(actor: Actor, alert: Alert) -> bool:
    """Someone is on it; False unless the alert was open."""
    actor.require(ALERT_PERMISSION)
    if alert.state != Alert.State.OPEN:
        return False
    by = actor.user if actor.user is not None else getattr(actor.token, "created_by", None)
    alerts.acknowledge(alert, by)
    _audit(actor, alert, "Acknowledged")
    return True


def resolve(actor: Actor, alert: Alert) -> bool:
    """Resolve by hand; False when it was resolved already."""
    actor.require(ALERT_PERMISSION)
    if not alert.is_unresolved:
        return False
    alerts.resolve(alert, by=_name(actor))
    _audit(actor, alert, "Resolved")
    return True


MAX_SNOOZE = timedelta(days=30)
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.IGNORECASE)
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """'30m', '4h', '2d', '90s' -> a timedelta; ValueError naming the value otherwise."""
    match = _DURATION_RE.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30m, 4h or 2d")
    return timedelta(**{_DURATION_UNITS[match.group(2).lower()]: int(match.group(1))})


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date and time; without an offset it is in the project's time zone."""
    try:
        moment = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date and time") from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def check_snooze_end(until: datetime, now: datetime | None = None) -> datetime:
    """The end of a snooze must lie ahead, and within MAX_SNOOZE (a forgotten snooze silences
    a task for good)."""
    now = now or timezone.now()
    if until <= now:
        raise ValueError(f"{until.isoformat()} is not in the future")
    if until > now + MAX_SNOOZE:
        raise ValueError(f"{until.isoformat()} is more than {MAX_SNOOZE.days} days ahead")
    return until


def snooze(actor: Actor, task: Task | None, until: datetime) -> list[str]:
    """Snooze one task, or every current task when `task` is None, until `until`. Alerts are
    still recorded; nobody is notified and `late` is not raised until then."""
    actor.require(TASK_PERMISSION)
    check_snooze_end(until)
    tasks = _targets(task)
    names = alerts.snooze(tasks, until)
    when = timezone.localtime(until).strftime("%Y-%m-%d %H:%M %Z")
    for each in Task.objects.filter(name__in=names):
        _audit(actor, each, f"Snoozed until {when}")
    return names


def unsnooze(actor: Actor, task: Task | None) -> list[str]:
    """End the snooze of one task or of all; their still-open alerts are notified once."""
    actor.require(TASK_PERMISSION)
    names = alerts.unsnooze(_targets(task))
    for each in Task.objects.filter(name__in=names):
        _audit(actor, each, "Snooze cleared")
    return names


def _targets(task: Task | None) -> models.QuerySet[Task]:
    if task is None:
        return Task.objects.filter(retired_at__isnull=True)
    if task.is_retired:
        raise Refused(f"task {task.name!r} is retired: it is no longer declared")
    return Task.objects.filter(pk=task.pk)


def _name(actor: Actor) -> str:
    return str(actor.user.get_username()) if actor.user is not None else str(actor)


def _audit(actor: Actor, obj: models.Model, what: str) -> None:
    """An admin LogEntry (the admin's History page) and a daily-log line, whatever the door."""
    user = actor.user if actor.user is not None else _author_for(actor)
    message = what if actor.door == "admin" else f"{what} through the {actor.door} by {actor}"
    LogEntry.objects.create(
        user_id=user.pk,
        content_type_id=ContentType.objects.get_for_model(obj, for_concrete_model=False).pk,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        action_flag=CHANGE,
        change_message=message,
    )
    task = obj if isinstance(obj, Task) else obj.task  # type: ignore[attr-defined]
    door = {"admin": "the admin", "api": "the API", "command": "the command line"}[actor.door]
    logs.write("INFO", task.name, f"{what[0].lower()}{what[1:]} through {door} by {actor}")


def _author_for(actor: Actor) -> Any:
    """A token's creator, or the inactive system account for commands and orphan tokens."""
    if actor.token is not None and actor.token.created_by_id is not None:
        return actor.token.created_by
    user, _ = get_user_model().objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"is_active": False, "password": "!"}
    )
    return user
