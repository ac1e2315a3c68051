"""Every task setting, declared once (docs/configuration.md, "The settings").

A setting is a field of `TaskSpec` whose metadata is a `Setting`: the types a declaration may
give, how its value is checked and normalised, its default and meaning as the docs state them,
whether it is stored on the `Task` row, where the admin's task page shows it and what the API
calls it. Every reader derives from `SETTINGS`:

* `cronjobs.supervisor.registry` checks `@cronjob(...)` options and `[tasks.NAME]` tables;
* `cronjobs.supervisor.sync` copies the stored settings onto the Task row;
* the admin's task page groups the stored settings into its read-only sections;
* the API's task body (`cronjobs.views.payloads`) lists the public ones;
* `bin/settings-table` writes the table in docs/configuration.md (tests/test_docs.py fails
  while it is stale).

Adding a setting: its field here, its `Task` column and migration (when stored), and the code
that acts on it (docs/architecture.md, "Adding a task setting").

No Django models are imported, so the web layer and the engine can both read this module and a
script can import it without configured settings.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import json
import re
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

from cronjobs.schedules import cron_syntax_problem, is_valid

NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,99}")  # always fullmatch: `$` would let "x\n" through
HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class Stored(enum.Enum):
    """How a setting reaches the Task row."""

    ALWAYS = "always"  # the declaration owns the column: every sync brings it up to date
    ON_CREATE = "on_create"  # the initial value only; operators own it afterwards
    NEVER = "never"  # the supervisor reads it from the declaration itself


class Group(enum.StrEnum):
    """The sections of the admin's task page, in their order."""

    TASK = ""
    SCHEDULE = "Schedule"
    CHAINS = "Chains and hosts"
    LIMITS = "Limits"
    ALERTS = "Alert policy"


@dataclasses.dataclass(frozen=True)
class Setting:
    """One task setting. `name` is filled in from the TaskSpec field that carries it."""

    accepts: tuple[type, ...]  # the TOML/Python types a declaration may give
    wanted: str  # the end of "X is not ...", when the type is wrong
    form: str  # the docs' "parsing" column
    meaning: str  # the docs' "meaning" column (Markdown)
    group: Group
    parse: Callable[[Any], Any] | None = None  # checks and normalises; ValueError names why
    default_text: str = ""  # the docs' "default" column, when the default alone says too little
    help: str = ""  # the line under its value on the admin's task page (the column's help_text)
    stored: Stored = Stored.ALWAYS
    command_only: bool = False
    admin_field: str = ""  # the admin's read-only field for it; the setting's name if empty
    api_key: str | None = ""  # its key in the API's task body; the name if empty; None: not shown
    name: str = ""

    @property
    def display_field(self) -> str:
        return self.admin_field or self.name

    @property
    def api_name(self) -> str | None:
        return None if self.api_key is None else self.api_key or self.name

    def stored_value(self, spec: TaskSpec) -> Any:
        """The Task column's value: lists are stored comma-separated, and a setting whose
        default depends on others (`slow_after`, `memory_warn`) is stored as it takes effect."""
        value = getattr(spec, self._attribute)
        return ",".join(value) if isinstance(value, tuple) else value

    @functools.cached_property
    def _attribute(self) -> str:
        """The TaskSpec attribute stored_value reads: asked once, not for each of 10,000
        tasks."""
        effective = f"effective_{self.name}"
        return effective if hasattr(TaskSpec, effective) else self.name

    def row_value(self, row: Any) -> Any:
        """The value of a Task row's column as the API shows it (lists as lists)."""
        value = getattr(row, self.name)
        if isinstance(self.default, tuple):
            return [part for part in value.split(",") if part]
        return value

    @property
    def default(self) -> Any:
        field = _FIELDS[self.name]
        return None if field.default is dataclasses.MISSING else field.default

    @property
    def required(self) -> bool:
        return _FIELDS[self.name].default is dataclasses.MISSING

    def check(self, value: Any) -> Any:
        """The declared value, checked and normalised; ValueError says what is wrong."""
        if (isinstance(value, bool) and bool not in self.accepts) or not isinstance(
            value, self.accepts
        ):
            raise ValueError(f"{value!r} is not {self.wanted}")
        return self.parse(value) if self.parse else value

    def docs_row(self) -> str:
        default = self.default_text or ("required" if self.required else _shown(self.default))
        return f"| `{self.name}` | {default} | {self.form} | {self.meaning} |"


def _shown(value: Any) -> str:
    if value in ((), None):
        return "none"
    if value == "":
        return "empty"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{json.dumps(value).strip(chr(34))}`"


def setting(**declaration: Any) -> dict[str, Setting]:
    """A TaskSpec field's metadata: `field(default=..., metadata=setting(...))`."""
    return {"setting": Setting(**declaration)}


# Parsers: each takes a value of an accepted type and returns what the TaskSpec holds. ------


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


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError(f"{value} must be greater than zero")
    return value


def _not_negative(value: float) -> float:
    if value < 0:
        raise ValueError(f"{value} must not be negative")
    return value


def _schedule(value: str) -> str:
    schedule = value.strip()
    if schedule and not is_valid(schedule):
        raise ValueError(f"{schedule!r} is not a valid cron expression")
    problem = cron_syntax_problem(schedule) if schedule else ""
    if problem:  # croniter accepts more than the crontab that will run it
        raise ValueError(f"{schedule!r} {problem}")
    return schedule


def _time_zone(value: str) -> str:
    name = value.strip()
    if not name:
        return ""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone this machine knows (an IANA name)") from None
    return name


def _jitter(value: float) -> float:
    if not 0 <= value < 3600:
        raise ValueError(f"{value} is not from 0 up to 3600 seconds")
    return float(value)


def _log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise ValueError(f"{value!r} is not one of {LOG_LEVELS}")
    return value.upper()


def _priority(value: int) -> int:
    if not 1 <= value <= 5:
        raise ValueError(f"{value} is not between 1 and 5")
    return value


def _percentage(value: float) -> float:
    if not 0 < value <= 100:
        raise ValueError(f"{value} is not above 0 and up to 100")
    return float(value)


DURATION_ALERTS = ("off", "auto")
MIN_BASELINE, MAX_BASELINE = 5, 200


def _duration_alerts(value: str) -> str:
    if value.strip().lower() not in DURATION_ALERTS:
        raise ValueError(f"{value!r} is not one of {DURATION_ALERTS}")
    return value.strip().lower()


def _baseline(value: int) -> int:
    if not MIN_BASELINE <= value <= MAX_BASELINE:
        raise ValueError(f"{value} is not between {MIN_BASELINE} and {MAX_BASELINE}")
    return value


def _ping_url(value: str) -> str:
    url = value.strip()
    if url and not re.match(r"^https?://[^/\s]+", url):
        raise ValueError("must start with http:// or https:// and a host")
    return url


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of " + ", ".join(map(repr, choices)))
        return value

    return parse


def _names(pattern: re.Pattern[str]) -> Callable[[list[Any]], tuple[str, ...]]:
    def parse(values: list[Any]) -> tuple[str, ...]:
        for value in values:
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise ValueError(f"{value!r} is not a valid name")
        if len(set(values)) != len(values):
            raise ValueError("names a task or host twice")
        return tuple(values)

    return parse


def _environment(table: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    for key, value in table.items():
        if not ENV_NAME_RE.fullmatch(key):
            raise ValueError(f"{key!r} is not a variable name")
        if not isinstance(value, str) or "\0" in value:
            raise ValueError(f"{key}: {value!r} is not a string without NUL")
    return tuple(sorted(table.items()))


def _variable_names(names: list[Any]) -> tuple[str, ...]:
    for key in names:
        if not isinstance(key, str) or not ENV_NAME_RE.fullmatch(key):
            raise ValueError(f"{key!r} is not a variable name")
    return tuple(names)


# The declaration. ----------------------------------------------------------------------------

_WHOLE, _SECONDS, _BOOL = (int,), (int, float), (bool,)
_TRUE_OR_FALSE = "true or false"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """A validated task declaration. `target` is 'module:qualname' or a command argv; every
    other field but `name`, `kind` and `source` is a setting, in the docs' order."""

    name: str
    kind: str  # "callable" | "command"
    target: str | tuple[str, ...]
    source: str = ""

    timeout: int = dataclasses.field(
        metadata=setting(
            accepts=_WHOLE,
            wanted="whole seconds",
            form="whole number, above 0",
            meaning="Seconds per attempt; then SIGTERM to the process group, "
            "`CRONJOBS_KILL_GRACE`, SIGKILL [timeout].",
            group=Group.LIMITS,
            help="Seconds",
            parse=_positive,
        )
    )
    schedule: str = dataclasses.field(
        default="",
        metadata=setting(
            accepts=(str,),
            wanted="a cron expression",
            form="text; a cron expression of 5 fields or a macro (`@daily`, `@hourly`...)",
            meaning="When cron runs it, read in `TIME_ZONE`. Syntax that croniter accepts but "
            "Debian's cron rejects (a seconds field, `L`, `W`, `#`, `?`, `H`) is an error.",
            group=Group.SCHEDULE,
            parse=_schedule,
            default_text="empty: manual only",
        ),
    )
    time_zone: str = dataclasses.field(
        default="",
        metadata=setting(
            accepts=(str,),
            wanted="an IANA time zone name like Europe/London",
            form="an IANA zone name (`Europe/London`, `America/New_York`)",
            meaning="The zone `schedule` is read in, when it is not `TIME_ZONE`: the installed "
            "line fires at every hour the slot can fall on in the machine's zone, and "
            "`runjob --trigger cron` runs only at a slot of this zone (otherwise it exits 3 and "
            'records nothing; docs/operations.md, "Time zones").',
            group=Group.SCHEDULE,
            parse=_time_zone,
            default_text="empty: `TIME_ZONE`",
            help="IANA zone its schedule is read in; empty: the site's",
        ),
    )
    start_deadline: float | None = dataclasses.field(
        default=None,
        metadata=setting(
            accepts=_SECONDS,
            wanted="seconds",
            form="seconds (whole or decimal), above 0",
            meaning="A cron invocation that begins more than this after its slot records a "
            "`skipped` row (reason `deadline`) and exits 3 instead of running at the wrong "
            "time; the watchdog's `late` alert follows as usual.",
            group=Group.SCHEDULE,
            help="Seconds after the slot; empty: no deadline",
            parse=_positive,
            default_text="none: start however late",
        ),
    )
    jitter: float = dataclasses.field(
        default=0,
        metadata=setting(
            accepts=_SECONDS,
            wanted="seconds",
            form="seconds (whole or decimal), 0 or more, under 3600",
            meaning="A cron invocation waits a delay below this before its first attempt, the "
            "same for the same task and host every time (a hash, like Jenkins' `H`), so tasks "
            "due at one minute spread out; the start lag leaves it out.",
            group=Group.SCHEDULE,
            help="Seconds, at most",
            parse=_jitter,
        ),
    )
    max_attempts: int = dataclasses.field(
        default=3,
        metadata=setting(
            accepts=_WHOLE,
            wanted="a whole number",
            form="whole number, above 0",
            meaning="Total tries per invocation [max_retries].",
            group=Group.LIMITS,
            parse=_positive,
        ),
    )
    retry_delay: float = dataclasses.field(
        default=60,
        metadata=setting(
            accepts=_SECONDS,
            wanted="seconds",
            form="seconds (whole or decimal), 0 or more",
            meaning="Wait between attempts [retry_delay].",
            group=Group.LIMITS,
            help="Seconds",
            parse=_not_negative,
        ),
    )
    memory_limit: int | None = dataclasses.field(
        default=None,
        metadata=setting(
            accepts=(str, int),
            wanted="a size like 512M",
            form='a size: `"512M"`, `"1.5G"`, `"256MiB"`, or bytes (`1048576`); units k, M, G, '
            "T of 1024",
            meaning="Resident memory of the job's process tree (for a command, the command's "
            "own tree; for a function, its worker process and children), or the kernel's "
            "high-water mark of any one of its processes; over it the tree is killed and the "
            "attempt is `memory_exceeded`, which is not retried [memory_limit].",
            group=Group.LIMITS,
            help="Bytes, whole tree",
            parse=parse_size,
            admin_field="memory_limit_text",
            api_key="memory_limit_bytes",
        ),
    )
    memory_warn: int | None = dataclasses.field(
        default=None,
        metadata=setting(
            accepts=(str, int),
            wanted="a size like 400M",
            form="a size, as above",
            meaning="A higher peak raises a `memory` alert.",
            group=Group.LIMITS,
            help="Bytes",
            parse=parse_size,
            default_text="80 % of `memory_limit`; none without a limit",
            admin_field="memory_warn_text",
            api_key="memory_warn_bytes",
        ),
    )
    slow_after: float | None = dataclasses.field(
        default=None,
        metadata=setting(
            accepts=_SECONDS,
            wanted="seconds",
            form="seconds (whole or decimal), above 0",
            meaning="A longer attempt raises a `slow` alert.",
            group=Group.LIMITS,
            help="Seconds",
            parse=_positive,
            default_text="80 % of `timeout`",
        ),
    )
    circuit_breaker: bool = dataclasses.field(
        default=True,
        metadata=setting(
            accepts=_BOOL,
            wanted=_TRUE_OR_FALSE,
            form=_TRUE_OR_FALSE,
            meaning="Whether failures can open the task's circuit [enable_circuit_breaker].",
            group=Group.LIMITS,
        ),
    )
    alert_on_failure: bool = dataclasses.field(
        default=True,
        metadata=setting(
            accepts=_BOOL,
            wanted=_TRUE_OR_FALSE,
            form=_TRUE_OR_FALSE,
            meaning="Whether a run whose attempts all failed raises a `failed` alert "
            "[alert_on_failure].",
            group=Group.ALERTS,
        ),
    )
    alert_after: int = dataclasses.field(
        default=1,
        metadata=setting(
            accepts=_WHOLE,
            wanted="a whole number of consecutive failed runs",
            form="whole number, above 0",
            meaning="How many failed runs in a row open the `failed` alert (a success starts "
            "the count again).",
            group=Group.ALERTS,
            help="Consecutive failed runs before the failed alert opens",
            parse=_positive,
        ),
    )
    success_target: float = dataclasses.field(
        default=99.0,
        metadata=setting(
            accepts=_SECONDS,
            wanted="a percentage above 0 and up to 100",
            form="percent, above 0 and up to 100",
            meaning="Below it (attempts that succeeded over `success_window`, once at least 5 "
            "finished) a `success_rate` alert opens; it resolves when the rate is back. Every "
            "page's health is `warning` while the last 24 hours are below it, as that alert's "
            "severity is (the health rule, admin.md).",
            group=Group.ALERTS,
            help="Percent of runs that succeed",
            parse=_percentage,
        ),
    )
    success_window: int = dataclasses.field(
        default=24 * 3600,
        metadata=setting(
            accepts=_WHOLE,
            wanted="whole seconds",
            form="whole seconds, above 0",
            meaning="The window of `success_target`.",
            group=Group.ALERTS,
            help="Seconds",
            parse=_positive,
        ),
    )
    duration_alerts: str = dataclasses.field(
        default="off",
        metadata=setting(
            accepts=(str,),
            wanted='"off" or "auto"',
            form='`"off"` or `"auto"`',
            meaning="`auto`: a successful attempt far outside the task's own recent successes "
            'raises `too_short` or `too_long` (docs/operations.md, "Duration anomalies"); a '
            "success back inside resolves both. `slow_after` stays the fixed long-side limit.",
            group=Group.ALERTS,
            help="auto: alert on runs far shorter or longer than usual",
            parse=_duration_alerts,
        ),
    )
    duration_baseline: int = dataclasses.field(
        default=20,
        metadata=setting(
            accepts=_WHOLE,
            wanted="a whole number of successful runs, 5 or more",
            form=f"whole number, {MIN_BASELINE} to {MAX_BASELINE}",
            meaning="How many of the latest successful attempts form the baseline (their "
            f"median and spread); nothing is judged before {MIN_BASELINE} are known.",
            group=Group.ALERTS,
            help="Successful runs that form the duration baseline",
            parse=_baseline,
        ),
    )
    ping_url: str = dataclasses.field(
        default="",
        metadata=setting(
            accepts=(str,),
            wanted="an http(s) Healthchecks ping URL",
            form="an `http://` or `https://` URL",
            meaning="Healthchecks-protocol pings: `/start` before the first attempt, the URL on "
            "success, `/fail` with the output tail (up to 100 KB) on failure, each with "
            "`?rid=<run id>`; skipped runs send nothing.",
            group=Group.ALERTS,
            help="Healthchecks ping URL",
            parse=_ping_url,
            default_text="empty (or `CRONJOBS_PING_URL_TEMPLATE`)",
            admin_field="ping_url_text",
            api_key=None,  # the URL is the secret of the check it pings
        ),
    )
    log_level: str = dataclasses.field(
        default="INFO",
        metadata=setting(
            accepts=(str,),
            wanted="one of " + ", ".join(LOG_LEVELS),
            form="`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`, any case",
            meaning="Level of the job's `ctx.logger` [log_level].",
            group=Group.LIMITS,
            parse=_log_level,
        ),
    )
    priority: int = dataclasses.field(
        default=3,
        metadata=setting(
            accepts=_WHOLE,
            wanted="1 (first) to 5 (last)",
            form="whole number, 1 to 5",
            meaning="Order of `runjob --all` and of the task list, 1 first.",
            group=Group.SCHEDULE,
            parse=_priority,
        ),
    )
    description: str = dataclasses.field(
        default="",
        metadata=setting(
            accepts=(str,),
            wanted="text",
            form="text",
            meaning="Shown by `runjob --list`, the admin and the API.",
            group=Group.TASK,
        ),
    )
    enabled: bool = dataclasses.field(
        default=True,
        metadata=setting(
            accepts=_BOOL,
            wanted=_TRUE_OR_FALSE,
            form=_TRUE_OR_FALSE,
            meaning="The initial state only: once the task exists, operators own the flag "
            "(admin, API). `false` also leaves the task out of the installed crontab.",
            group=Group.TASK,
            stored=Stored.ON_CREATE,
        ),
    )
    env: tuple[tuple[str, str], ...] = dataclasses.field(
        default=(),
        metadata=setting(
            accepts=(dict,),
            wanted='a table of strings like {LANG = "C"}',
            form="command tasks only: a table of strings, keys are variable names",
            meaning='Variables set for the command (see "Command tasks: the environment").',
            group=Group.TASK,
            parse=_environment,
            stored=Stored.NEVER,
            command_only=True,
            api_key=None,
        ),
    )
    pass_env: tuple[str, ...] = dataclasses.field(
        default=(),
        metadata=setting(
            accepts=(list,),
            wanted='a list of variable names like ["PGPASSWORD"]',
            form="command tasks only: a list of variable names",
            meaning="Variables copied from the supervisor's environment.",
            group=Group.TASK,
            parse=_variable_names,
            stored=Stored.NEVER,
            command_only=True,
            api_key=None,
        ),
    )
    after: tuple[str, ...] = dataclasses.field(
        default=(),
        metadata=setting(
            accepts=(list,),
            wanted='a list of task names like ["refresh_leaderboard"]',
            form="a list of declared task names",
            meaning="Chains: when one of these upstream tasks succeeds, the same `runjob` "
            "invocation runs this task next (trigger `after`, the upstream's run id on its "
            "rows), in priority order with the other downstream tasks, each with its own lease "
            "and circuit; a disabled downstream task is passed over; a failed, stopped or "
            "skipped upstream runs none. The task may also keep its own `schedule`. An unknown "
            "name, the task itself or a cycle is a declaration error. `runjob --all` runs a "
            "task with `after` only through its upstream tasks.",
            group=Group.CHAINS,
            help="Upstream tasks, comma-separated: runs after them",
            parse=_names(NAME_RE),
            admin_field="upstream",
        ),
    )
    hosts: tuple[str, ...] = dataclasses.field(
        default=(),
        metadata=setting(
            accepts=(list,),
            wanted='a list of host names like ["web1", "web2"]',
            form="a list of host names (`CRONJOBS_HOST` values)",
            meaning="Host pinning: on any other host `runjob` exits 3 at once, records no row "
            "and writes one line in that host's daily log, so every host can install the same "
            "crontab. Run-now from another host is refused.",
            group=Group.CHAINS,
            help="Hosts it may run on, comma-separated; empty: any",
            parse=_names(HOST_RE),
            default_text="none: any host",
            admin_field="where_it_runs",
        ),
    )
    catch_up: bool = dataclasses.field(
        default=False,
        metadata=setting(
            accepts=_BOOL,
            wanted=_TRUE_OR_FALSE,
            form=_TRUE_OR_FALSE,
            meaning="When the task's latest scheduled slot passed more than "
            "`CRONJOBS_LATE_GRACE` ago and no run started since, the watchdog starts one run "
            "(trigger `catch_up`): one per missed slot, only the latest slot (no backfill after "
            "a long outage), never while the task is disabled, snoozed or its circuit is open.",
            group=Group.CHAINS,
            help="The watchdog starts one run for a missed latest slot",
        ),
    )

    overlap: str = dataclasses.field(
        default="skip",
        metadata=setting(
            accepts=(str,),
            wanted='"skip", "wait" or "replace"',
            form='`"skip"`, `"wait"` or `"replace"`',
            meaning="What an invocation does while another run of the task holds its lease "
            "(on any host): `skip` records a `skipped` row (reason `overlap`) and exits 3; "
            "`wait` waits for that run to end, up to the task's `timeout`, then runs (or, "
            "still held, skips); `replace` asks that run to stop (its attempt ends `cancelled`, "
            "`stopped_by` naming the replacement), waits until its lease is released, then "
            "runs. Never two runs at once in any policy (operations.md, "
            '"Overlap policies").',
            group=Group.CHAINS,
            help="While another run holds the lease: skip, wait or replace",
            parse=_choice("skip", "wait", "replace"),
        ),
    )
    on_lease_lost: str = dataclasses.field(
        default="stop",
        metadata=setting(
            accepts=(str,),
            wanted='"stop" or "continue"',
            form='`"stop"` or `"continue"`',
            meaning="Fencing: `stop` ends the job (SIGTERM, a short grace, SIGKILL, the whole "
            "tree) when its lease could lapse within a third of `CRONJOBS_LEASE_TTL` without "
            "a renewal, or at once when another run took the lease over; the attempt is "
            "`failed` with a `lease lost` error. `continue` lets the job run on and gives up "
            'the guarantee that no two runs overlap (operations.md, "Lease").',
            group=Group.CHAINS,
            help="When the lease cannot be renewed or was taken over: stop or continue the job",
            parse=_choice("stop", "continue"),
        ),
    )

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


_FIELDS = {field.name: field for field in dataclasses.fields(TaskSpec)}

SETTINGS: Mapping[str, Setting] = {
    field.name: dataclasses.replace(field.metadata["setting"], name=field.name)
    for field in dataclasses.fields(TaskSpec)
    if "setting" in field.metadata
}
"""Every task setting by name, in the docs' order."""

STORED = tuple(s for s in SETTINGS.values() if s.stored is not Stored.NEVER)
"""The settings with a Task column of the same name."""

REQUIRED = tuple(s.name for s in SETTINGS.values() if s.required)
"""The settings a declaration must give, in the docs' order."""

# The tasks file's own key, documented in the same table as the settings.
COMMAND_ROW = (
    "| `command` | required in the file; not in `@cronjob` | a list of strings, or one string "
    "split like a shell | The command to exec [the wrapped script]. |"
)


def docs_table() -> str:
    """The settings table of docs/configuration.md."""
    head = "| setting | default | parsing | meaning |\n|---|---|---|---|\n"
    rows = [COMMAND_ROW, *(setting.docs_row() for setting in SETTINGS.values())]
    return head + "\n".join(rows) + "\n"
