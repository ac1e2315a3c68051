"""The task registry: what can run, with which limits.

Tasks come from two places (docs/configuration.md, "Task settings"):

* `@cronjob(...)` on a function in any installed app's `jobs.py`;
* `[tasks.<name>]` tables in the TOML tasks file (settings.CRONJOBS_TASKS_FILE) for commands.

Both are validated the same way. A mistake does not stop Django from starting: it is collected
as a `ConfigError` naming the task and the field, reported by `manage.py check`, and makes
`runjob` exit 2. The registry loads once per process, on first use.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import logging
import re
import shlex
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from croniter import croniter
from django.apps import apps
from django.conf import settings
from django.utils.module_loading import module_has_submodule

from cronjobs.schedules import cron_syntax_problem

NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,99}")  # always fullmatch: `$` would let "x\n" through
HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class ConfigError(ValueError):
    """A task declaration that cannot be used. The message names the task and the field."""

    def __init__(self, task: str, field: str, problem: str):
        self.task, self.field, self.problem = task, field, problem
        super().__init__(f"task {task!r}: {field}: {problem}")


def parse_size(value: Any) -> int:
    """'512M', '1.5G', '256MiB', '1048576' or an int -> bytes."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{value} must be positive")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size like 512M or 2G")
    number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError(f"{value!r} must be positive")
    return size


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A validated task declaration. `target` is 'module:qualname' or a command argv."""

    name: str
    kind: str  # "callable" | "command"
    target: str | tuple[str, ...]
    timeout: int
    schedule: str = ""
    description: str = ""
    max_attempts: int = 3
    retry_delay: int = 60
    memory_limit: int | None = None
    circuit_breaker: bool = True
    log_level: str = "INFO"
    alert_on_failure: bool = True
    slow_after: float | None = None
    memory_warn: int | None = None
    priority: int = 3
    enabled: bool = True
    source: str = ""
    # Command tasks only: variables set for the command, and names copied from the supervisor's
    # environment, on top of the minimal environment (docs/configuration.md, "Command tasks").
    env: tuple[tuple[str, str], ...] = ()
    pass_env: tuple[str, ...] = ()
    alert_after: int = 1
    success_target: float = 99.0
    success_window: int = 24 * 3600
    ping_url: str = ""
    after: tuple[str, ...] = ()  # upstream tasks: a success of one runs this task next
    hosts: tuple[str, ...] = ()  # CRONJOBS_HOST values it may run on; empty: any
    catch_up: bool = False  # the watchdog starts one run for a missed latest slot

    def may_run_on(self, host: str) -> bool:
        return not self.hosts or host in self.hosts

    @property
    def effective_slow_after(self) -> float:
        return self.slow_after if self.slow_after is not None else 0.8 * self.timeout

    @property
    def effective_memory_warn(self) -> int | None:
        if self.memory_warn is not None:
            return self.memory_warn
        return int(0.8 * self.memory_limit) if self.memory_limit else None

    @property
    def target_text(self) -> str:
        return self.target if isinstance(self.target, str) else json.dumps(list(self.target))

    def resolve_callable(self) -> Callable[..., Any]:
        assert isinstance(self.target, str), f"{self.name} is a command, not a callable"
        module_name, _, qualname = self.target.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        func: Callable[..., Any] = getattr(obj, "__wrapped_job__", obj)
        return func


@dataclasses.dataclass(frozen=True)
class JobContext:
    """What a job function receives: which run this is, and a logger whose lines land in the
    attempt's captured output and the daily log."""

    task: str
    run_id: str
    attempt: int
    max_attempts: int
    trigger: str
    logger: logging.Logger


# Option name -> (accepted types, human description). Shared by the decorator and the file.
OPTIONS: dict[str, tuple[tuple[type, ...], str]] = {
    "schedule": ((str,), "a cron expression"),
    "timeout": ((int,), "whole seconds"),
    "max_attempts": ((int,), "a whole number"),
    "retry_delay": ((int, float), "seconds"),
    "memory_limit": ((str, int), "a size like 512M"),
    "circuit_breaker": ((bool,), "true or false"),
    "log_level": ((str,), "one of " + ", ".join(LOG_LEVELS)),
    "alert_on_failure": ((bool,), "true or false"),
    "slow_after": ((int, float), "seconds"),
    "memory_warn": ((str, int), "a size like 400M"),
    "priority": ((int,), "1 (first) to 5 (last)"),
    "description": ((str,), "text"),
    "enabled": ((bool,), "true or false"),
    "env": ((dict,), 'a table of strings like {LANG = "C"}'),
    "pass_env": ((list,), 'a list of variable names like ["PGPASSWORD"]'),
    "alert_after": ((int,), "a whole number of consecutive failed runs"),
    "success_target": ((int, float), "a percentage above 0 and up to 100"),
    "success_window": ((int,), "whole seconds"),
    "ping_url": ((str,), "an http(s) Healthchecks ping URL"),
    "after": ((list,), 'a list of task names like ["refresh_leaderboard"]'),
    "hosts": ((list,), 'a list of host names like ["web1", "web2"]'),
    "catch_up": ((bool,), "true or false"),
}
COMMAND_ONLY = ("env", "pass_env")
# Smart Cron V2's names for two settings, accepted in the tasks file with the same meaning
# (docs/configuration.md); `manage.py check` warns with the new name (cronjobs.W001).
ALIASES = {"max_retries": "max_attempts", "enable_circuit_breaker": "circuit_breaker"}


def build_spec(name: str, kind: str, target: Any, options: dict[str, Any], source: str) -> TaskSpec:
    """Validate one declaration. Raises ConfigError naming the first bad field."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        problem = "use lower-case letters, digits and _ (max 100)"
        if isinstance(name, str) and any(ord(c) < 32 or ord(c) == 127 for c in name):
            problem = f"contains a control character (newline, NUL, ...): {problem}"
        raise ConfigError(str(name), "name", problem)
    for key, value in options.items():
        if key not in OPTIONS:
            known = ", ".join(sorted(OPTIONS))
            raise ConfigError(name, key, f"unknown setting (known: {known})")
        types, wanted = OPTIONS[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ConfigError(name, key, f"{value!r} is not {wanted}")
    if "timeout" not in options:
        raise ConfigError(name, "timeout", "is required (seconds)")
    fields: dict[str, Any] = dict(options)
    _check_environment(name, kind, fields)
    _check_positive(name, fields, "timeout")
    _check_positive(name, fields, "max_attempts")
    _check_positive(name, fields, "slow_after")
    if fields.get("retry_delay", 0) < 0:
        raise ConfigError(name, "retry_delay", f"{fields['retry_delay']} must not be negative")
    for key in ("memory_limit", "memory_warn"):
        if key in fields:
            try:
                fields[key] = parse_size(fields[key])
            except ValueError as exc:
                raise ConfigError(name, key, str(exc)) from None
    schedule = fields.get("schedule", "").strip()
    if schedule and not croniter.is_valid(schedule):
        raise ConfigError(name, "schedule", f"{schedule!r} is not a valid cron expression")
    problem = cron_syntax_problem(schedule) if schedule else ""
    if problem:  # croniter accepts more than the crontab that will run it
        raise ConfigError(name, "schedule", f"{schedule!r} {problem}")
    fields["schedule"] = schedule
    level = fields.get("log_level", "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(name, "log_level", f"{fields['log_level']!r} is not one of {LOG_LEVELS}")
    fields["log_level"] = level
    if not 1 <= fields.get("priority", 3) <= 5:
        raise ConfigError(name, "priority", f"{fields['priority']} is not between 1 and 5")
    _check_alert_policy(name, fields)
    _check_names(name, fields, "after", NAME_RE)
    _check_names(name, fields, "hosts", HOST_RE)
    if name in fields.get("after", ()):
        raise ConfigError(name, "after", "a task cannot run after itself")
    return TaskSpec(name=name, kind=kind, target=target, source=source, **fields)


def _check_environment(name: str, kind: str, fields: dict[str, Any]) -> None:
    """env = {NAME = "value"} and pass_env = ["NAME"]: command tasks only (function tasks are
    Django code and keep the process environment); names are shell variable names."""
    for key in COMMAND_ONLY:
        if key in fields and kind != "command":
            raise ConfigError(
                name, key, "only command tasks take it (functions keep the process environment)"
            )
    env = fields.get("env", {})
    for key, value in env.items():
        if not ENV_NAME_RE.fullmatch(key):
            raise ConfigError(name, "env", f"{key!r} is not a variable name")
        if not isinstance(value, str) or "\0" in value:
            raise ConfigError(name, "env", f"{key}: {value!r} is not a string without NUL")
    names = fields.get("pass_env", [])
    for key in names:
        if not isinstance(key, str) or not ENV_NAME_RE.fullmatch(key):
            raise ConfigError(name, "pass_env", f"{key!r} is not a variable name")
    if "env" in fields:
        fields["env"] = tuple(sorted(env.items()))
    if "pass_env" in fields:
        fields["pass_env"] = tuple(names)


def _check_alert_policy(name: str, fields: dict[str, Any]) -> None:
    _check_positive(name, fields, "alert_after")
    _check_positive(name, fields, "success_window")
    target = fields.get("success_target", 99.0)
    if not 0 < target <= 100:
        raise ConfigError(name, "success_target", f"{target} is not above 0 and up to 100")
    fields["success_target"] = float(target)
    ping = fields.get("ping_url", "").strip()
    if ping and not re.match(r"^https?://[^/\s]+", ping):
        raise ConfigError(name, "ping_url", "must start with http:// or https:// and a host")
    fields["ping_url"] = ping


def _check_names(name: str, fields: dict[str, Any], key: str, pattern: re.Pattern[str]) -> None:
    values = fields.get(key, [])
    for value in values:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ConfigError(name, key, f"{value!r} is not a valid name")
    if len(set(values)) != len(values):
        raise ConfigError(name, key, "names a task or host twice")
    if key in fields:
        fields[key] = tuple(values)


def _check_positive(name: str, fields: dict[str, Any], key: str) -> None:
    if key in fields and fields[key] <= 0:
        raise ConfigError(name, key, f"{fields[key]} must be greater than zero")


# Declarations made by @cronjob while jobs.py modules import: (name, target, options, source).
_declared: list[tuple[str, str, dict[str, Any], str]] = []


JobFunction = TypeVar("JobFunction", bound=Callable[..., Any])


def cronjob(name: str | None = None, **options: Any) -> Callable[[JobFunction], JobFunction]:
    """Declare a function as a supervised task. It is called with a JobContext when it takes an
    argument, or with none. Validation happens when the registry loads, so a bad declaration is
    reported by `manage.py check` instead of breaking every command at import time."""

    def register(func: JobFunction) -> JobFunction:
        task_name = name or func.__name__
        target = f"{func.__module__}:{func.__qualname__}"
        source = f"{inspect.getsourcefile(func)}:{func.__code__.co_firstlineno}"
        _declared.append((task_name, target, options, source))
        return func

    return register


class Registry:
    def __init__(self) -> None:
        self.tasks: dict[str, TaskSpec] = {}
        self.errors: list[ConfigError] = []
        self.warnings: list[ConfigError] = []  # old key names in the tasks file
        self._loaded = False

    def load(self, force: bool = False) -> Registry:
        if self._loaded and not force:
            return self
        self.tasks, self.errors, self.warnings = {}, [], []
        self.errors.extend(_import_jobs_modules())
        for task_name, target, options, source in _declared:
            self._add(build_spec, task_name, "callable", target, options, source)
        tasks_file = getattr(settings, "CRONJOBS_TASKS_FILE", None)
        if tasks_file and Path(tasks_file).exists():
            for build in _file_declarations(Path(tasks_file), self.warnings):
                self._add(build)
        self._check_chains()
        self._loaded = True
        return self

    def _check_chains(self) -> None:
        """`after` must name declared tasks and must not loop: each offending task becomes a
        declaration error (and is not runnable), like any other bad field."""
        bad: dict[str, ConfigError] = {}
        for spec in self.tasks.values():
            unknown = [name for name in spec.after if name not in self.tasks]
            if unknown:
                known = ", ".join(sorted(self.tasks))
                problem = f"unknown task {unknown[0]!r} (known: {known})"
                bad[spec.name] = ConfigError(spec.name, "after", problem)
        for cycle in _cycles({n: s.after for n, s in self.tasks.items() if n not in bad}):
            path = " -> ".join([*cycle, cycle[0]])
            for name in cycle:
                bad.setdefault(name, ConfigError(name, "after", f"makes a cycle: {path}"))
        for name, error in bad.items():
            self.errors.append(error)
            del self.tasks[name]

    def downstream(self, name: str) -> list[TaskSpec]:
        """The tasks declared `after` this one, in priority order."""
        return [spec for spec in self.by_priority() if name in spec.after]

    def _add(self, build: Callable[..., TaskSpec], *args: Any) -> None:
        try:
            spec = build(*args)
        except ConfigError as exc:
            self.errors.append(exc)
            return
        if spec.name in self.tasks:
            other = self.tasks[spec.name].source
            self.errors.append(ConfigError(spec.name, "name", f"declared twice ({other})"))
            return
        self.tasks[spec.name] = spec

    def get(self, name: str) -> TaskSpec | None:
        return self.load().tasks.get(name)

    def by_priority(self) -> list[TaskSpec]:
        return sorted(self.load().tasks.values(), key=lambda s: (s.priority, s.name))


def _cycles(graph: dict[str, tuple[str, ...]]) -> list[list[str]]:
    """Every cycle of the `after` graph, once each (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for upstream in graph.get(node, ()):
            if state.get(upstream) == 1:
                found.append(path[path.index(upstream) :])
            elif upstream not in state and upstream in graph:
                visit(upstream)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def _import_jobs_modules() -> list[ConfigError]:
    """Import every app's jobs.py. A module that fails to import is an error about that module,
    not a crash: the other apps' tasks still run."""
    errors = []
    for app in apps.get_app_configs():
        if module_has_submodule(app.module, "jobs"):
            try:
                importlib.import_module(f"{app.name}.jobs")
            except Exception as exc:
                problem = f"cannot be imported: {type(exc).__name__}: {exc}"
                errors.append(ConfigError(f"{app.name}.jobs", "module", problem))
    return errors


def _file_declarations(path: Path, warnings: list[ConfigError]) -> list[Callable[[], TaskSpec]]:
    """One builder per [tasks.<name>] table; a file that cannot be parsed is one error."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return [_fail(ConfigError(path.name, "file", f"cannot be read as TOML: {exc}"))]
    unknown = sorted(set(data) - {"tasks"})
    if unknown:
        problem = "unknown top-level key (use [tasks.NAME] tables)"
        return [_fail(ConfigError(path.name, unknown[0], problem))]
    tables = data.get("tasks", {})
    builders = []
    for task_name, table in tables.items():
        if not isinstance(table, dict):
            builders.append(_fail(ConfigError(task_name, "table", "must be a [tasks.NAME] table")))
            continue
        source = f"{path}:[tasks.{task_name}]"
        builders.append(_command_builder(task_name, dict(table), source, warnings))
    return builders


def _renamed(task_name: str, table: dict[str, Any], warnings: list[ConfigError]) -> None:
    """Replace V2 key names by their settings, noting a warning for each."""
    for old, new in ALIASES.items():
        if old not in table:
            continue
        if new in table:
            raise ConfigError(task_name, old, f"is the old name of {new}, which is also set")
        table[new] = table.pop(old)
        warnings.append(ConfigError(task_name, old, f"is the Smart Cron V2 name: use {new}"))


def _command_builder(
    task_name: str, table: dict[str, Any], source: str, warnings: list[ConfigError]
) -> Callable[[], TaskSpec]:
    def build() -> TaskSpec:
        _renamed(task_name, table, warnings)
        command = table.pop("command", None)
        if isinstance(command, str) and command.strip():
            argv = tuple(shlex.split(command))
        elif isinstance(command, list) and command and all(isinstance(a, str) for a in command):
            argv = tuple(command)
        else:
            raise ConfigError(task_name, "command", "is required: a list of strings or a string")
        return build_spec(task_name, "command", argv, table, source)

    return build


def _fail(error: ConfigError) -> Callable[[], TaskSpec]:
    def build() -> TaskSpec:
        raise error

    return build


registry = Registry()
