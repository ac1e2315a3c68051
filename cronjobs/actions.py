"""Operator actions: enable, disable, run now, stop, reset the circuit, acknowledge and resolve,
snooze and unsnooze, open and end a maintenance window, make and revoke a status badge.

Each action is one function that the admin, the JSON API and the management commands all call.
It checks the actor's permission (one rule for every door), does the change, and writes the
audit trail: an admin `LogEntry` naming the user, or the token or command, plus a line in the
daily log (docs/operations.md, "Audit trail"). Doors only translate the outcome: an admin
message, a JSON status code, a command's exit status.

Web code reaches the engine only through this module and cronjobs.reporting, so the few things
its pages show of the engine are here too: a running job's live memory, a URL with its secrets
cut, the daily log's tail. And every door reads a snooze's end with the one `snooze_end`.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
import weakref
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import models, transaction
from django.http import HttpRequest
from django.utils import timezone

from cronjobs import schedules, windows
from cronjobs.models import Alert, ApiToken, Execution, MaintenanceWindow, StatusBadge, Task
from cronjobs.supervisor import alerts, circuit, lease, logs, notify, process, runner
from cronjobs.supervisor.registry import registry

TASK_PERMISSION = "cronjobs.change_task"
ALERT_PERMISSION = "cronjobs.change_alert"
WINDOW_PERMISSION = "cronjobs.change_maintenancewindow"
# Reads need the permission of the admin page that shows the same rows (docs/api.md).
VIEW_WINDOW_PERMISSION = "cronjobs.view_maintenancewindow"
VIEW_TASK_PERMISSION = "cronjobs.view_task"
VIEW_EXECUTION_PERMISSION = "cronjobs.view_execution"
VIEW_ALERT_PERMISSION = "cronjobs.view_alert"
# What a page or body showing task health and alert messages beside the runs needs (the status
# summary, the dashboard): each part's own view permission.
OVERVIEW_PERMISSIONS = (VIEW_EXECUTION_PERMISSION, VIEW_TASK_PERMISSION, VIEW_ALERT_PERMISSION)
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
    """Allowed, but not possible now (a retired or disabled task, a run already under way)."""


class Throttled(ActionError):
    """Too many writes from one user or token; `retry_after` is in whole seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


def is_read(permission: str) -> bool:
    """View permissions only read; every other permission changes something."""
    return permission.partition(".")[2].startswith("view_")


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who asks: a user (admin or API session), an API token, or a management command. A token
    or a command acts as no user (Django's AnonymousUser)."""

    door: str  # "admin", "api" or "command"
    user: User | AnonymousUser = dataclasses.field(default_factory=AnonymousUser)
    token: ApiToken | None = None
    command: str = ""
    # Set by the first write (`throttle`): an actor is made once per request, so the write
    # rate limit counts a request once however many actions it does.
    _throttled: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)

    @classmethod
    def from_request(cls, request: HttpRequest) -> Actor:
        """The admin's actor for this request: the same one for every action the request does
        (a bulk action, each row toggled on the task list). The API makes its actor once in
        `authorize` and hands it to the view."""
        actor = _admin_actors.get(request)
        if actor is None:
            actor = _admin_actors[request] = cls("admin", user=request.user)
        return actor

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
        """The one permission rule, for reads and writes at every door:
        - commands run with shell access to the host and may do anything;
        - a user needs to be active staff with the permission;
        - a token acts with its creator's permissions (and stops working when the creator is
          deleted, deactivated or loses them), and never writes when read-only; a token made on
          the command line without a user is the host operator's and may do anything it is
          scoped to;
        - writes by a user or a token are rate-limited (`throttle`)."""
        if self.command:
            return
        if self.token is not None:
            if self.token.read_only and not is_read(permission):
                raise Forbidden(f"token {self.token.name!r} is read-only")
            owner = self.token.created_by
            if owner is not None:
                _require_user(owner, permission, f"token {self.token.name!r} of ")
            elif not self.token.from_command_line:  # its creator was deleted
                raise Forbidden(f"token {self.token.name!r} has lost its creator")
        else:
            _require_user(self.user, permission)
        if not is_read(permission):
            self.throttle()

    def throttle(self) -> None:
        """At most CRONJOBS_WRITE_RATE writes per CRONJOBS_WRITE_WINDOW seconds per user or
        token, counted once per request, shared by every web worker and host (the cache is the
        database). Raises Throttled with the seconds until the window ends."""
        if self.command or self._throttled:
            return
        object.__setattr__(self, "_throttled", True)  # frozen: a private per-request mark
        window = settings.CRONJOBS_WRITE_WINDOW
        now = time.time()
        who = f"token:{self.token.pk}" if self.token is not None else f"user:{self.user.pk}"
        key = f"cronjobs:writes:{who}:{int(now // window)}"
        cache.add(key, 0, timeout=window + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr: a new window
            cache.set(key, 1, timeout=window + 1)
            count = 1
        if count > settings.CRONJOBS_WRITE_RATE:
            retry = max(1, int(window - now % window + 0.999))
            raise Throttled(
                f"too many changes from {self}: at most {settings.CRONJOBS_WRITE_RATE} "
                f"per {window} s; try again in {retry} s",
                retry,
            )


# The admin's actor of each request under way; an entry goes with its request.
_admin_actors: weakref.WeakKeyDictionary[HttpRequest, Actor] = weakref.WeakKeyDictionary()


def _require_user(user: User | AnonymousUser, permission: str, whose: str = "") -> None:
    """`whose` names the token acting for the user, for the message."""
    if not (user.is_authenticated and user.is_active and user.is_staff):
        raise Forbidden(f"{whose}staff access required")
    if not user.has_perm(permission):
        raise Forbidden(f"{whose}permission {permission} required")


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
    """Start a supervised run in the background and return its run id. The task's lease is
    reserved for the new run before its process starts, so a second request while the run is
    pending or under way (or while a scheduled run holds the lease) is refused and starts
    nothing: a returned run id is a run that will really start."""
    actor.require(TASK_PERMISSION)
    if task.is_retired:
        raise Refused(f"task {task.name!r} is retired: it is no longer declared")
    if not task.enabled:
        raise Refused(f"task {task.name!r} is disabled: enable it first")
    spec = registry.get(task.name)
    if spec is None:
        raise Refused(f"task {task.name!r} is not declared on this host: run synctasks")
    if not spec.may_run_on(settings.CRONJOBS_HOST):
        where = ", ".join(spec.hosts)
        raise Refused(
            f"task {task.name!r} runs on {where} only, not on {settings.CRONJOBS_HOST}: "
            "start it from one of those hosts"
        )
    trigger = TRIGGERS[actor.door]
    run_id = runner.new_run_id()
    if not lease.reserve(task, run_id, host=f"run-now:{settings.CRONJOBS_HOST}"):
        raise Refused(f"task {task.name!r} is already running or about to: nothing started")
    try:
        runner.start_in_background(task.name, trigger, run_id=run_id)
    except OSError as exc:
        lease.unreserve(task, run_id)
        raise Refused(f"task {task.name!r} could not be started: {exc}") from None
    _audit(actor, task, f"Run now (run {run_id})")
    return run_id


def stop(actor: Actor, task: Task) -> str:
    """Ask the task's running supervisor, on whichever host, to stop its run; returns the run
    id. The supervisor sees the request on its lease beat (CRONJOBS_LEASE_BEAT seconds), sends
    SIGTERM to the job's process group, SIGKILL after the grace, records the attempt
    `cancelled` with who stopped it, and neither retries nor counts it against the circuit."""
    actor.require(TASK_PERMISSION)
    run_id = lease.request_stop(task, by=_name(actor))
    if not run_id:
        raise Refused(f"task {task.name!r} is not running: nothing to stop")
    _audit(actor, task, f"Stop requested (run {run_id})")
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
    owner = actor.token.created_by if actor.token is not None else None
    alerts.acknowledge(alert, actor.user if actor.user.is_authenticated else owner)
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


def snooze_end(length: str = "", until: str = "", now: datetime | None = None) -> datetime:
    """When a snooze asked for at any door ends (the command's --for and --until, the API's
    minutes and until, the admin's choices): `length` after `now`, as '30m', '4h', '2d', '90s'
    or 'tomorrow' (08:00 the next day in the project's time zone), or at `until`, an ISO 8601
    date and time. Exactly one of the two; ValueError names what is wrong. `snooze` checks
    that the end lies ahead and within MAX_SNOOZE."""
    if bool(length.strip()) == bool(until.strip()):
        raise ValueError("give either how long to snooze or until when")
    if until.strip():
        return schedules.parse_moment(until)
    now = timezone.localtime(now or timezone.now())
    if length.strip().lower() == "tomorrow":
        return (now + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    return now + schedules.parse_duration(length, hint=", or tomorrow")


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


def open_window(
    actor: Actor, names: list[str], mode: str, reason: str, until: datetime
) -> MaintenanceWindow:
    """A one-off maintenance window from now until `until` over the named tasks, or every task
    when `names` is ["*"] (docs/operations.md, "Maintenance windows"). ValueError names a bad
    task, mode, reason or end; nothing is written then."""
    actor.require(WINDOW_PERMISSION)
    names = window_tasks(names)
    if mode not in MaintenanceWindow.Mode.values:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MaintenanceWindow.Mode.values)}")
    reason = " ".join(str(reason).split())
    if not reason or len(reason) > 500:
        raise ValueError("give a reason of 1 to 500 characters (operators see it on every page)")
    windows.check_end(until)
    window = windows.open_window(names, mode, reason, until, by=_name(actor))
    when = timezone.localtime(until).strftime("%Y-%m-%d %H:%M %Z")
    what = f"Maintenance window {window.label} ({mode}) until {when}: {reason}"
    _audit(actor, window, what, ADDITION)
    covered = (
        _targets(None) if names == [MaintenanceWindow.ALL] else Task.objects.filter(name__in=names)
    )
    for task in covered:
        _audit(actor, task, what)
    return window


def window_tasks(names: list[str]) -> list[str]:
    """The tasks a window is asked for: current task names, or ["*"] alone for every task."""
    names = [name.strip() for name in names if name.strip()]
    if not names:
        raise ValueError('name the tasks, or "*" (--all) for every task')
    if MaintenanceWindow.ALL in names:
        if len(names) > 1:
            raise ValueError('"*" already means every task: give it alone')
        return names
    current = set(
        Task.objects.filter(name__in=names, retired_at__isnull=True).values_list("name", flat=True)
    )
    unknown = [name for name in names if name not in current]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r}")
    return sorted(set(names))


def end_window(actor: Actor, window: MaintenanceWindow) -> bool:
    """End a one-off window now; False when it was over already. The alerts a `mute` window
    held back and that are still open are notified once."""
    actor.require(WINDOW_PERMISSION)
    if window.recurring:
        raise Refused(
            f"window {window.label} comes from the tasks file: edit or remove its "
            "[windows.NAME] table there, then run synctasks"
        )
    if not windows.end_window(window, by=_name(actor)):
        return False
    if window.mode == MaintenanceWindow.Mode.MUTE:
        alerts.close_window(window, windows.Calendar())
    _audit(actor, window, f"Maintenance window {window.label} ended")
    return True


def new_badge(actor: Actor, task: Task | None) -> StatusBadge:
    """Give the task's status badge (every task's when `task` is None) a new secret URL: made
    if there was none, and the old URL stops working if there was."""
    actor.require(TASK_PERMISSION)
    badge = StatusBadge.objects.filter(task=task).first() or StatusBadge(task=task)
    badge.secret = secrets.token_urlsafe(24)
    badge.created_at = timezone.now()
    badge.save()
    _audit(actor, badge, "Status badge URL made")
    return badge


def revoke_badge(actor: Actor, task: Task | None) -> bool:
    """Delete the status badge's secret: its URL answers 404 from now on. False if none."""
    actor.require(TASK_PERMISSION)
    badge = StatusBadge.objects.filter(task=task).first()
    if badge is None:
        return False
    with transaction.atomic():
        _audit(actor, badge, "Status badge revoked")
        badge.delete()
    return True


def _targets(task: Task | None) -> models.QuerySet[Task]:
    if task is None:
        return Task.objects.filter(retired_at__isnull=True)
    if task.is_retired:
        raise Refused(f"task {task.name!r} is retired: it is no longer declared")
    return Task.objects.filter(pk=task.pk)


def _name(actor: Actor) -> str:
    return actor.user.get_username() if actor.user.is_authenticated else str(actor)


def _audit(
    actor: Actor,
    obj: Task | Alert | MaintenanceWindow | StatusBadge,
    what: str,
    flag: int = CHANGE,
) -> None:
    """An admin LogEntry (the admin's History page) and a daily-log line, whatever the door.
    A task's badge is recorded on its task; the badge of all tasks on itself."""
    if isinstance(obj, StatusBadge) and obj.task is not None:
        obj = obj.task
    elif isinstance(obj, StatusBadge):
        what = what.replace("Status badge", "Status badge of all tasks", 1)
    user = actor.user if actor.user.is_authenticated else _author_for(actor)
    message = what if actor.door == "admin" else f"{what} through the {actor.door} by {actor}"
    LogEntry.objects.create(
        user_id=user.pk,
        content_type_id=ContentType.objects.get_for_model(obj, for_concrete_model=False).pk,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        action_flag=flag,
        change_message=message,
    )
    if isinstance(obj, MaintenanceWindow):
        subject = "maintenance"
    elif isinstance(obj, StatusBadge):
        subject = "all-tasks"
    else:
        subject = (obj if isinstance(obj, Task) else obj.task).name
    door = {"admin": "the admin", "api": "the API", "command": "the command line"}[actor.door]
    logs.write("INFO", subject, f"{what[0].lower()}{what[1:]} through {door} by {actor}")


def _author_for(actor: Actor) -> User:
    """A token's creator, or the inactive system account for commands and orphan tokens."""
    if actor.token is not None and actor.token.created_by is not None:
        return actor.token.created_by
    user, _ = get_user_model().objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"is_active": False, "password": "!"}
    )
    return user


# What the web pages show of the engine -----------------------------------------------------


def live_memory(execution: Execution) -> int | None:
    """What a running attempt's process tree holds now when it runs on this host; None on
    another host or when it cannot be read."""
    if execution.host != settings.CRONJOBS_HOST or not execution.pid:
        return None
    return process.tree_memory(execution.pid)


def redacted(url: str) -> str:
    """A receiver's or ping URL as a page may show it: scheme and host, no tokens."""
    return notify.redact(url)


def log_tail(lines: int) -> tuple[str, list[str]]:
    """Today's daily log: its file name and its last `lines` lines."""
    return logs.daily_log_path().name, logs.tail(lines)
