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
import logging
import shlex
import tomllib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from django.apps import apps
from django.conf import settings
from django.utils.module_loading import module_has_submodule

from cronjobs.tasksettings import NAME_RE, SETTINGS, TaskSpec


class ConfigError(ValueError):
    """A task declaration that cannot be used. The message names the task and the field."""

    def __init__(self, task: str, field: str, problem: str):
        self.task, self.field, self.problem = task, field, problem
        super().__init__(f"task {task!r}: {field}: {problem}")


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
    # The slot a cron or catch-up run is for, on the task's wall clock; None for a run a
    # person or a chain started. A job's business day comes from it, not from the clock.
    scheduled_for: datetime | None = None


# Smart Cron V2's names for two settings, accepted in the tasks file with the same meaning
# (docs/configuration.md); `manage.py check` warns with the new name (cronjobs.W001).
ALIASES = {"max_retries": "max_attempts", "enable_circuit_breaker": "circuit_breaker"}


def build_spec(name: str, kind: str, target: Any, options: dict[str, Any], source: str) -> TaskSpec:
    """Validate one declaration against the settings' declarations (cronjobs.tasksettings).
    Raises ConfigError naming the first bad field."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        problem = "use lower-case letters, digits and _ (max 100)"
        if isinstance(name, str) and any(ord(c) < 32 or ord(c) == 127 for c in name):
            problem = f"contains a control character (newline, NUL, ...): {problem}"
        raise ConfigError(str(name), "name", problem)
    fields: dict[str, Any] = {}
    for key, value in options.items():
        if key not in SETTINGS:
            known = ", ".join(sorted(SETTINGS))
            raise ConfigError(name, key, f"unknown setting (known: {known})")
        if SETTINGS[key].command_only and kind != "command":
            problem = "only command tasks take it (functions keep the process environment)"
            raise ConfigError(name, key, problem)
        try:
            fields[key] = SETTINGS[key].check(value)
        except ValueError as exc:
            raise ConfigError(name, key, str(exc)) from None
    missing = [s.name for s in SETTINGS.values() if s.required and s.name not in fields]
    if missing:
        raise ConfigError(name, missing[0], f"is required ({SETTINGS[missing[0]].wanted})")
    if name in fields.get("after", ()):
        raise ConfigError(name, "after", "a task cannot run after itself")
    return TaskSpec(name=name, kind=kind, target=target, source=source, **fields)


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
