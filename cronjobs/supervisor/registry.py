"""The task registry: what can run, with which limits.

Tasks come from two places (docs/configuration.md, "Task settings"):

* `@cronjob(...)` on a function in any installed app's `jobs.py`;
* `[tasks.<name>]` tables in the TOML tasks file (settings.CRONJOBS_TASKS_FILE) for commands.

The tasks file also declares recurring maintenance windows (`[windows.<name>]`, `WindowSpec`),
checked here too: cron syntax, length, mode, time zone, and task names that exist.

Both are validated the same way. A mistake does not stop Django from starting: it is collected
as a `ConfigError` naming the task and the field, reported by `manage.py check`, and makes
`runjob` exit 2. The registry loads once per process, on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import inspect
import logging
import marshal
import os
import shlex
import sys
import tempfile
import tomllib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.apps import apps
from django.conf import settings
from django.utils.module_loading import module_has_submodule

from cronjobs import schedules, windows
from cronjobs.tasksettings import NAME_RE, REQUIRED, SETTINGS, TaskSpec


class ConfigError(ValueError):
    """A task declaration that cannot be used. The message names the task and the field."""

    def __init__(self, task: str, field: str, problem: str):
        self.task, self.field, self.problem = task, field, problem
        super().__init__(f"task {task!r}: {field}: {problem}")


class WindowError(ConfigError):
    """A `[windows.NAME]` table that cannot be used; `task` holds the window's name."""

    def __init__(self, window: str, field: str, problem: str):
        super().__init__(window, field, problem)
        self.args = (f"window {window!r}: {field}: {problem}",)

    def __str__(self) -> str:
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """A recurring maintenance window from the tasks file (docs/configuration.md,
    "Maintenance windows"): from each time `start` fires in `time_zone`, for `duration`
    seconds, `tasks` (names, or ("*",)) are skipped or muted."""

    name: str
    start: str
    duration: int
    tasks: tuple[str, ...]
    mode: str
    reason: str
    time_zone: str
    source: str


WINDOW_KEYS = ("start", "duration", "tasks", "mode", "reason", "time_zone")


def build_window(name: str, table: dict[str, Any], source: str) -> WindowSpec:
    """Validate one `[windows.NAME]` table; raises WindowError naming the first bad field.
    Task names are checked against the registry once every task is loaded."""
    if not NAME_RE.fullmatch(name):
        raise WindowError(name, "name", "use lower-case letters, digits and _ (max 100)")
    unknown = sorted(set(table) - set(WINDOW_KEYS))
    if unknown:
        raise WindowError(name, unknown[0], f"unknown key (known: {', '.join(WINDOW_KEYS)})")
    missing = [key for key in WINDOW_KEYS[:5] if key not in table]
    if missing:
        raise WindowError(name, missing[0], "is required")
    start = table["start"]
    if not isinstance(start, str) or not start.strip():
        raise WindowError(name, "start", "must be a cron expression such as '0 22 * * 0'")
    try:
        start = SETTINGS["schedule"].check(start)  # the same rule as a task's schedule
    except ValueError as exc:
        raise WindowError(name, "start", str(exc)) from None
    try:
        length = schedules.parse_duration(table["duration"])
    except ValueError as exc:
        raise WindowError(name, "duration", str(exc)) from None
    if length > timedelta(days=7):
        raise WindowError(name, "duration", "at most 7d: a longer window is a disabled task")
    tasks = table["tasks"]
    if tasks == "*":
        tasks = ["*"]
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise WindowError(name, "tasks", 'must be a list of task names, or "*" for every task')
    mode = table["mode"]
    if mode not in windows.Mode.values:
        raise WindowError(name, "mode", f"must be one of {', '.join(windows.Mode.values)}")
    reason = table["reason"]
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise WindowError(name, "reason", "must be a text of 1 to 500 characters")
    zone = table.get("time_zone", settings.TIME_ZONE)
    if not isinstance(zone, str) or not _is_zone(zone):
        raise WindowError(name, "time_zone", f"{zone!r} is not a time zone such as Europe/Paris")
    return WindowSpec(
        name=name,
        start=start.strip(),
        duration=int(length.total_seconds()),
        tasks=tuple(tasks),
        mode=mode,
        reason=reason.strip(),
        time_zone=zone,
        source=source,
    )


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return False
    return bool(name)


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
    missing = [name for name in REQUIRED if name not in fields]
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
        self.windows: dict[str, WindowSpec] = {}
        self._loaded = False

    def load(self, force: bool = False) -> Registry:
        if self._loaded and not force:
            return self
        self.tasks, self.errors, self.warnings, self.windows = {}, [], [], {}
        self.errors.extend(_import_jobs_modules())
        for task_name, target, options, source in _declared:
            self._add(build_spec, task_name, "callable", target, options, source)
        tasks_file = getattr(settings, "CRONJOBS_TASKS_FILE", None)
        window_tables: dict[str, Any] = {}
        if tasks_file and Path(tasks_file).exists():
            for build in _file_declarations(Path(tasks_file), self.warnings, window_tables):
                self._add(build)
        self._check_chains()
        self._add_windows(window_tables, str(tasks_file))
        self._loaded = True
        return self

    def _add_windows(self, tables: dict[str, Any], path: str) -> None:
        """The tasks file's windows, each checked (its task names against the tasks loaded);
        a bad one is an error and is left out, like a bad task."""
        for name, table in tables.items():
            try:
                if not isinstance(table, dict):
                    raise WindowError(name, "table", "must be a [windows.NAME] table")
                spec = build_window(name, dict(table), f"{path}:[windows.{name}]")
                unknown = [t for t in spec.tasks if t != "*" and t not in self.tasks]
                if unknown:
                    known = ", ".join(sorted(self.tasks))
                    raise WindowError(
                        name, "tasks", f"unknown task {unknown[0]!r} (known: {known})"
                    )
                if "*" in spec.tasks and len(spec.tasks) > 1:
                    raise WindowError(name, "tasks", '"*" already means every task: give it alone')
            except WindowError as exc:
                self.errors.append(exc)
                continue
            self.windows[name] = spec

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


def _file_declarations(
    path: Path, warnings: list[ConfigError], window_tables: dict[str, Any]
) -> list[Callable[[], TaskSpec]]:
    """One builder per [tasks.<name>] table; a file that cannot be parsed is one error. The
    [windows.<name>] tables are handed back in `window_tables`."""
    try:
        data = _parsed(path)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return [_fail(ConfigError(path.name, "file", f"cannot be read as TOML: {exc}"))]
    unknown = sorted(set(data) - {"tasks", "windows"})
    if unknown:
        problem = "unknown top-level key (use [tasks.NAME] and [windows.NAME] tables)"
        return [_fail(ConfigError(path.name, unknown[0], problem))]
    if not isinstance(data.get("windows", {}), dict):
        return [_fail(ConfigError(path.name, "windows", "must be [windows.NAME] tables"))]
    window_tables.update(data.get("windows", {}))
    tables = data.get("tasks", {})
    builders = []
    for task_name, table in tables.items():
        if not isinstance(table, dict):
            builders.append(_fail(ConfigError(task_name, "table", "must be a [tasks.NAME] table")))
            continue
        source = f"{path}:[tasks.{task_name}]"
        builders.append(_command_builder(task_name, dict(table), source, warnings))
    return builders


def _parsed(path: Path) -> dict[str, Any]:
    """The tasks file as tomllib reads it. Like a .pyc, a marshal copy of the result is kept
    in `__pycache__` beside the file, named by the digest of its bytes and the Python version:
    parsing 10,000 tables costs 0.35 s of CPU in every command, reading the copy 20 ms. Whoever
    may write that directory may already replace the tasks file, so the copy trusts no one
    new; where it cannot be written, the file is parsed each time."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:32]
    copy = path.parent / "__pycache__" / f"{path.name}.{sys.implementation.cache_tag}.{digest}"
    try:
        data = marshal.loads(copy.read_bytes())
        if isinstance(data, dict):
            return data
    except (OSError, EOFError, ValueError, TypeError):
        pass
    data = tomllib.loads(raw.decode("utf-8"))
    # ValueError: a TOML date or time, which marshal cannot hold.
    with contextlib.suppress(OSError, ValueError):
        _keep(copy, marshal.dumps(data), path.stat().st_mode & 0o666)
    return data


def _keep(copy: Path, content: bytes, mode: int) -> None:
    """Write the copy whole (a reader never sees half of it), readable by whoever may read the
    tasks file (its `environment` tables may hold secrets), and drop older copies."""
    copy.parent.mkdir(exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=copy.parent, prefix=".tmp-")
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(temporary, copy)
    for old in copy.parent.glob(f"{copy.name.rsplit('.', 1)[0]}.*"):
        if old != copy:
            old.unlink(missing_ok=True)


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
