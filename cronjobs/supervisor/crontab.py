"""Installed crontab lines (docs/operations.md, "Installing the schedules"): one per host that
starts the dispatcher every minute, or (`crontab add --per-task`) one per scheduled task.

django-crontab stays the installer (it reads, edits and writes the user's crontab and owns the
CRONTAB_* settings), but its lines call `crontab run <hash>`, which swallows exceptions, exits 0
and changes hash with every edit. `RegistryCrontab` keeps its read-edit-write cycle and writes
lines built from our registry instead:

    * * * * * cd /srv/app && /srv/app/.venv/bin/python /srv/app/manage.py runjob --due \
        >> /srv/app/logs/cron-stdout.log 2>&1 # django-cronjobs for flagged-cron at /srv/app: \
        runjob --due

    5 7 * * * cd /srv/app && /srv/app/.venv/bin/python /srv/app/manage.py runjob \
        generate_daily_products --trigger cron >> /srv/app/logs/cron-stdout.log 2>&1 \
        # django-cronjobs for flagged-cron at /srv/app: generate_daily_products

cron sees runjob's exit status; the settings read `.env` themselves, so the line needs nothing
from a login shell. The comment ends with this checkout's marker and `runjob --due` or the task
name: lines of other checkouts and of the user are never touched. `crontab check` compares
with the kind of lines installed (the dispatcher's when there are none).

`crontab_status()` compares what is installed with what should be, for `manage.py crontab
check` and the admin's banner.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from django.conf import settings
from django_crontab.app_settings import Settings
from django_crontab.crontab import Crontab

from cronjobs.schedules import covering_expression, describe, system_time_zone
from cronjobs.supervisor.cronenv import settings_fingerprint
from cronjobs.supervisor.registry import registry
from cronjobs.tasksettings import TaskSpec

CRON_PACKAGE_HINT = "install Debian's cron package (apt-get install cron)"
CRON_PIDFILES = ("/run/crond.pid", "/var/run/crond.pid")


class CrontabError(RuntimeError):
    """The crontab cannot be read or written, or must not be installed; the message says why."""


@dataclasses.dataclass(frozen=True)
class CrontabStatus:
    """Installed lines compared with the registry. Task names in each list; `problems` are
    reasons `add` refuses (time zones, invalid declarations); `error` means it could not look."""

    missing: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    error: str = ""
    daemon_running: bool | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.stale or self.extra or self.problems or self.error)

    def messages(self) -> list[str]:
        """One sentence per finding, for `crontab check` and the admin banner."""
        found = [self.error] if self.error else []
        found += list(self.problems)
        for names, what in (
            (self.missing, "not installed"),
            (self.stale, "installed with an old line"),
            (self.extra, "installed but no longer scheduled"),
        ):
            if names:
                found.append(f"{what}: {', '.join(names)}")
        if (self.missing or self.stale or self.extra) and not (self.problems or self.error):
            found.append("run `manage.py crontab add` to bring the crontab up to date")
        if self.daemon_running is False:
            found.append("the cron daemon is not running: nothing installed will fire")
        return found


def crontab_settings() -> Settings:
    """django-crontab's view of the CRONTAB_* settings, read afresh (tests override them)."""
    return Settings(settings)


def scheduled_tasks() -> list[TaskSpec]:
    """The tasks that get a line: declared, enabled in code, with a schedule."""
    return [spec for spec in registry.by_priority() if spec.enabled and spec.schedule]


def marker(options: Settings | None = None) -> str:
    comment: str = (options or crontab_settings()).CRONTAB_COMMENT
    return comment


# The dispatcher's line: its key among the installed lines, and the end of its comment.
DISPATCHER = "runjob --due"


def command_for(spec: TaskSpec | None, options: Settings | None = None) -> str:
    """The shell command cron runs for a task, or for the dispatcher (`spec` None): runjob's
    exit status is the command's."""
    options = options or crontab_settings()
    manage = Path(options.DJANGO_MANAGE_PATH).resolve()
    log = Path(settings.LOG_DIR) / "cron-stdout.log"
    words = [env_file_assignment(), options.COMMAND_PREFIX, shlex.quote(options.PYTHON_EXECUTABLE)]
    runjob = ["runjob", spec.name, "--trigger", "cron"] if spec else DISPATCHER.split()
    words += [shlex.quote(str(manage)), *runjob]
    if options.DJANGO_SETTINGS_MODULE:
        words.append(f"--settings={shlex.quote(options.DJANGO_SETTINGS_MODULE)}")
    words += [options.COMMAND_SUFFIX, ">>", shlex.quote(str(log)), "2>&1"]
    command = f"cd {shlex.quote(str(manage.parent))} && " + " ".join(w for w in words if w)
    # cron turns an unescaped % into a newline (a URL-encoded password in a prefix, say).
    return command.replace("%", r"\%")


def line_for(spec: TaskSpec, options: Settings | None = None) -> str:
    options = options or crontab_settings()
    line: str = options.CRONTAB_LINE_PATTERN % {
        "time": covering_expression(spec.schedule, spec.time_zone)
        if spec.time_zone
        else spec.schedule,
        "command": command_for(spec, options),
        "comment": f"{marker(options)}: {spec.name}",
    }
    return line


def dispatcher_line(options: Settings | None = None) -> str:
    """The host's one line: the dispatcher every minute (zones, priorities and the host cap
    are its business, cronjobs/supervisor/dispatch.py)."""
    options = options or crontab_settings()
    line: str = options.CRONTAB_LINE_PATTERN % {
        "time": "* * * * *",
        "command": command_for(None, options),
        "comment": f"{marker(options)}: {DISPATCHER}",
    }
    return line


def wanted_lines(options: Settings | None = None, per_task: bool = False) -> dict[str, str]:
    """Key (DISPATCHER, or each task's name with `per_task`) -> the line to install."""
    options = options or crontab_settings()
    if not per_task:
        return {DISPATCHER: dispatcher_line(options)}
    return {spec.name: line_for(spec, options) for spec in scheduled_tasks()}


def our_task(line: str, options: Settings | None = None) -> str | None:
    """The task a line of this checkout runs, or None for anyone else's line."""
    prefix = f"# {marker(options)}: "
    head, sep, task = line.rstrip("\n").rpartition(prefix)
    return task.strip() if sep and not head.lstrip().startswith("#") else None


def installed_lines(lines: list[str], options: Settings | None = None) -> dict[str, list[str]]:
    """Key (DISPATCHER or a task name) -> this checkout's installed lines for it (normally
    one)."""
    found: dict[str, list[str]] = {}
    for line in lines:
        task = our_task(line, options)
        if task:
            found.setdefault(task, []).append(_ended(line))
    return found


def install_problems() -> list[str]:
    """Why `crontab add` must refuse: zones that disagree, declarations that are invalid."""
    registry.load()
    problems = [problem for problem in [zone_problem()] if problem]
    # The registry also rejects croniter-only syntax that Debian's cron would refuse.
    problems += [f"invalid declaration, {error}" for error in registry.errors]
    return problems


def zone_problem() -> str:
    """Debian's cron fires in the system zone and ignores CRON_TZ: the two must agree."""
    wanted, system = settings.TIME_ZONE, system_time_zone()
    if same_zone(wanted, system):
        return ""
    return (
        f"TIME_ZONE is {wanted} but cron on this machine fires in the system zone {system} "
        "(/etc/localtime; Debian's cron ignores CRON_TZ), so schedules would run at the wrong "
        f"hours. Align them: set TIME_ZONE={system} in .env, or set the system zone to {wanted} "
        f"(timedatectl set-timezone {wanted}, or ln -sf /usr/share/zoneinfo/{wanted} "
        "/etc/localtime) and restart cron."
    )


def same_zone(first: str, second: str) -> bool:
    """Equal names, or aliases with the same rules (NZ and Pacific/Auckland, UTC and Etc/UTC)."""
    if first == second:
        return True
    data = [_zone_bytes(name) for name in (first, second)]
    return data[0] is not None and data[0] == data[1]


def _zone_bytes(name: str) -> bytes | None:
    for base in zoneinfo.TZPATH:
        path = Path(base) / name
        if path.is_file():
            return path.read_bytes()
    return None


def env_file_assignment() -> str:
    """`CRONJOBS_ENV_FILE=PATH` for the lines when settings name an env file: the path goes in
    the crontab, the secrets stay in the file."""
    path = settings.CRONJOBS_ENV_FILE
    return f"CRONJOBS_ENV_FILE={shlex.quote(str(path))}" if path else ""


# Cron's environment on Debian: nothing from a login shell.
CRON_PATH = "/usr/bin:/bin"
_SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|_KEY$)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"://[^/:@\s]*:[^@/\s]+@")


def cron_environment(options: Settings | None = None) -> dict[str, str]:
    """The environment an installed line's runjob starts with: what Debian's cron gives every
    job, plus the line's own assignments (CRONJOBS_ENV_FILE, CRONTAB_COMMAND_PREFIX)."""
    import getpass

    options = options or crontab_settings()
    env = {
        "PATH": CRON_PATH,
        "HOME": os.path.expanduser("~"),
        "LOGNAME": getpass.getuser(),
        "SHELL": "/bin/sh",
        "DJANGO_SETTINGS_MODULE": options.DJANGO_SETTINGS_MODULE or "flagged_cron_project.settings",
    }
    for word in shlex.split(f"{env_file_assignment()} {options.COMMAND_PREFIX}"):
        name, sep, value = word.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            break  # the assignments end where the command starts
        env[name] = value
    return env


def cron_fingerprint(options: Settings | None = None) -> dict[str, Any]:
    """The checked settings as an installed line would really get them: a fresh interpreter
    started from the project root with cron's environment loads the settings and reports."""
    options = options or crontab_settings()
    manage = Path(options.DJANGO_MANAGE_PATH).resolve()
    result = subprocess.run(
        [options.PYTHON_EXECUTABLE, "-m", "cronjobs.supervisor.cronenv"],
        cwd=manage.parent,
        env=cron_environment(options),
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        found = {"error": (result.stderr.strip().splitlines() or ["no output"])[-1]}
    return found


def environment_problems(options: Settings | None = None) -> list[str]:
    """Why the installed lines would not run what this process runs, one sentence per setting
    that differs, naming it and the fix; and any secret the line itself would carry."""
    options = options or crontab_settings()
    problems = secrets_in_prefix(options.COMMAND_PREFIX)
    fix = (
        "put it in .env in the project root, or in a file named with `--env-file PATH` "
        "(installed lines then load that file)"
    )
    cron = cron_fingerprint(options)
    if "error" in cron:
        return [
            *problems,
            f"an installed line could not load the settings ({cron['error']}): {fix}",
        ]
    for name, (shown, compared) in settings_fingerprint().items():
        their_shown, their_compared = cron.get(name, ("?", "?"))
        if compared != their_compared:
            detail = f"this process has {shown}, cron would have {their_shown}"
            if shown == their_shown:
                detail = "the password differs"
            problems.append(f"{name} differs under cron ({detail}): {fix}")
    return problems


def secrets_in_prefix(prefix: str) -> list[str]:
    """CRONTAB_COMMAND_PREFIX is written into the crontab: no secrets there."""
    problems = []
    for word in shlex.split(prefix):
        name, sep, value = word.partition("=")
        if sep and (_SECRET_NAME.search(name) or _URL_PASSWORD.search(value)):
            problems.append(
                f"CRONTAB_COMMAND_PREFIX sets {name} with a secret in it, which would be "
                "written into the crontab: put it in .env or a file named with --env-file"
            )
    return problems


def crontab_status() -> CrontabStatus:
    """Compare the user's crontab with the registry. Never raises: an unreadable crontab or a
    missing `crontab` binary is reported in `error`."""
    problems = tuple(install_problems())
    running = daemon_running()
    try:
        current = read_crontab()
    except CrontabError as exc:
        return CrontabStatus(problems=problems, error=str(exc), daemon_running=running)
    options = crontab_settings()
    installed = installed_lines(current, options)
    # Per-task lines, when those are what is installed; else the dispatcher's.
    per_task = bool(installed) and DISPATCHER not in installed
    wanted = wanted_lines(options, per_task)
    return CrontabStatus(
        missing=tuple(name for name in wanted if name not in installed),
        stale=tuple(
            name for name in wanted if name in installed and installed[name] != [wanted[name]]
        ),
        extra=tuple(sorted(name for name in installed if name not in wanted)),
        problems=problems,
        daemon_running=running,
    )


def daemon_running() -> bool | None:
    """Whether Debian's cron daemon runs here (its pid file), or None when it cannot tell."""
    for pidfile in CRON_PIDFILES:
        try:
            pid = int(Path(pidfile).read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return False if crontab_executable_found() else None


def crontab_executable_found() -> bool:
    return Path(_executable()).exists()


def _executable() -> str:
    return shlex.split(crontab_settings().CRONTAB_EXECUTABLE)[0]


def read_crontab() -> list[str]:
    """The user's crontab lines; [] when there is none yet."""
    argv = [*shlex.split(crontab_settings().CRONTAB_EXECUTABLE), "-l"]
    result = _run(argv)
    if result.returncode != 0:
        if re.search(r"no crontab for", result.stderr, re.IGNORECASE):
            return []
        raise CrontabError(f"`{shlex.join(argv)}` failed: {result.stderr.strip()}")
    return result.stdout.splitlines(keepends=True)


def write_crontab(lines: list[str]) -> None:
    argv = [*shlex.split(crontab_settings().CRONTAB_EXECUTABLE), "-"]
    result = _run(argv, "".join(_ended(line) for line in lines))
    if result.returncode != 0:
        raise CrontabError(f"`{shlex.join(argv)}` refused the new crontab: {result.stderr.strip()}")


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise CrontabError(f"no `{argv[0]}` here: {CRON_PACKAGE_HINT}") from None


def _ended(line: str) -> str:
    return line if line.endswith("\n") else line + "\n"


class RegistryCrontab(Crontab):  # type: ignore[misc]  # django-crontab ships no type hints
    """django-crontab's read-edit-write cycle, with lines from our registry. Its own read and
    write go through os.popen/os.system and ignore failures; ours report them."""

    def __init__(self, out: Callable[[str], object] = print, **options: Any) -> None:
        super().__init__(**options)
        self.out = out

    def read(self) -> None:
        self.crontab_lines = read_crontab()

    def write(self) -> None:
        write_crontab(self.crontab_lines)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # The parent writes even after an exception, which could leave a half-edited crontab.
        if exc_type is None and not self.readonly:
            self.write()

    def add_jobs(self, per_task: bool = False) -> None:
        Path(settings.LOG_DIR).mkdir(parents=True, exist_ok=True)  # the redirect needs it
        if not per_task:
            self.crontab_lines.append(dispatcher_line(self.settings))
            count = len(scheduled_tasks())
            self._say(f"  adding cronjob: {DISPATCHER} (every minute, for {count} scheduled tasks)")
            return
        for spec in scheduled_tasks():
            self.crontab_lines.append(line_for(spec, self.settings))
            self._say(f"  adding cronjob: {spec.name} ({spec.schedule})")

    def remove_jobs(self) -> None:
        kept = []
        for line in self.crontab_lines:
            task = our_task(line, self.settings)
            if task:
                self._say(f"  removing cronjob: {task}")
            else:
                kept.append(line)
        self.crontab_lines = kept

    def show_jobs(self) -> None:
        self.out(f"Installed lines of this checkout ({marker(self.settings)}):")
        installed = installed_lines(self.crontab_lines, self.settings)
        for task, lines in sorted(installed.items()):
            for line in lines:
                self.out(f"{task}: {line.rstrip()}")
        if DISPATCHER in installed:
            self.out(f"Tasks the dispatcher starts when due ({len(scheduled_tasks())}):")
            for spec in scheduled_tasks():
                zone = f" ({spec.time_zone})" if spec.time_zone else ""
                self.out(f"{spec.name}: {spec.schedule}{zone}: {describe(spec.schedule)}")

    def _say(self, text: str) -> None:
        if self.verbosity >= 1:
            self.out(text)
