"""Task declarations (supervisor/registry.py): validation that names the task and the field."""

from __future__ import annotations

import pytest

from cronjobs.supervisor.registry import ConfigError, Registry, build_spec
from cronjobs.tasksettings import parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512M", 512 * 1024**2),
        ("1.5G", int(1.5 * 1024**3)),
        ("256MiB", 256 * 1024**2),
        ("64k", 64 * 1024),
        ("1048576", 1048576),
        (4096, 4096),
        ("2 GB", 2 * 1024**3),
    ],
)
def test_sizes_parse(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "12X", "", "-5M", 0, True, "0M"])
def test_bad_sizes_are_rejected(text):
    with pytest.raises(ValueError, match=r"size|positive"):
        parse_size(text)


def _spec(**options):
    options.setdefault("timeout", 60)
    return build_spec("stock_sync", "command", ("true",), options, "test")


def test_defaults_follow_the_old_wrapper():
    spec = _spec(timeout=600, memory_limit="512M")
    assert spec.max_attempts == 3
    assert spec.retry_delay == 60
    assert spec.circuit_breaker is True
    assert spec.alert_on_failure is True
    assert spec.effective_slow_after == 480
    assert spec.effective_memory_warn == int(0.8 * 512 * 1024**2)


@pytest.mark.parametrize(
    ("options", "field", "problem"),
    [
        ({"timeout": 0}, "timeout", "greater than zero"),
        ({"timeout": -1}, "timeout", "greater than zero"),
        ({"timeout": "60"}, "timeout", "not whole seconds"),
        ({"schedule": "61 * * * *"}, "schedule", "not a valid cron expression"),
        ({"schedule": "every day"}, "schedule", "not a valid cron expression"),
        ({"schedule": "0 0 L * *"}, "schedule", "Debian's cron does not understand"),
        ({"schedule": "0 0 * * * *"}, "schedule", "cron takes 5"),
        ({"memory_limit": "lots"}, "memory_limit", "not a size"),
        ({"priority": 9}, "priority", "between 1 and 5"),
        ({"log_level": "LOUD"}, "log_level", "is not one of"),
        ({"retry_delay": -1}, "retry_delay", "must not be negative"),
        ({"max_attempts": 0}, "max_attempts", "greater than zero"),
        ({"circuit_breaker": "yes"}, "circuit_breaker", "not true or false"),
        ({"timout": 5}, "timout", "unknown setting"),
        ({"alert_after": 0}, "alert_after", "greater than zero"),
        ({"alert_after": 2.5}, "alert_after", "not a whole number of consecutive failed runs"),
        ({"success_target": 0}, "success_target", "is not above 0 and up to 100"),
        ({"success_target": 101}, "success_target", "is not above 0 and up to 100"),
        ({"success_target": "99%"}, "success_target", "not a percentage"),
        ({"success_window": 0}, "success_window", "greater than zero"),
        ({"ping_url": "hc-ping.com/x"}, "ping_url", "must start with http:// or https://"),
    ],
)
def test_invalid_settings_name_task_and_field(options, field, problem):
    with pytest.raises(ConfigError) as error:
        _spec(**options)
    assert error.value.task == "stock_sync"
    assert error.value.field == field
    assert problem in str(error.value)
    assert str(error.value).startswith(f"task 'stock_sync': {field}: ")


def test_timeout_is_required():
    with pytest.raises(ConfigError, match="timeout: is required"):
        build_spec("x", "command", ("true",), {}, "test")


def test_bad_names_are_rejected():
    with pytest.raises(ConfigError, match="name: use lower-case"):
        build_spec("Bad Name", "command", ("true",), {"timeout": 5}, "test")


def test_tasks_file_commands_and_errors(settings, tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text(
        '[tasks.php_sync]\ncommand = "php /srv/portal/cron/stock_sync.php --full"\ntimeout = 30\n'
        "[tasks.no_command]\ntimeout = 30\n"
        '[tasks.heartbeat]\ncommand = "true"\ntimeout = 5\n'
    )
    settings.CRONJOBS_TASKS_FILE = path
    registry = Registry().load()
    assert registry.tasks["php_sync"].target == ("php", "/srv/portal/cron/stock_sync.php", "--full")
    messages = sorted(str(e) for e in registry.errors)
    assert "task 'no_command': command: is required: a list of strings or a string" in messages
    assert any(m.startswith("task 'heartbeat': name: declared twice") for m in messages)


def test_a_tasks_file_is_parsed_once_and_an_edit_is_read_at_once(settings, tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text('[tasks.nightly]\ncommand = "true"\ntimeout = 5\nschedule = "0 2 * * *"\n')
    path.chmod(0o640)
    settings.CRONJOBS_TASKS_FILE = path
    assert Registry().load().tasks["nightly"].schedule == "0 2 * * *"
    (copy,) = (tmp_path / "__pycache__").iterdir()
    assert copy.stat().st_mode & 0o777 == path.stat().st_mode & 0o666
    assert Registry().load().tasks["nightly"].schedule == "0 2 * * *"
    path.write_text('[tasks.nightly]\ncommand = "true"\ntimeout = 5\nschedule = "0 3 * * *"\n')
    assert Registry().load().tasks["nightly"].schedule == "0 3 * * *"
    (newer,) = (tmp_path / "__pycache__").iterdir()  # the copy of the old text is gone
    assert newer != copy


def test_a_damaged_parsed_copy_is_parsed_again(settings, tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text('[tasks.nightly]\ncommand = "true"\ntimeout = 5\nschedule = "0 2 * * *"\n')
    settings.CRONJOBS_TASKS_FILE = path
    Registry().load()
    (copy,) = (tmp_path / "__pycache__").iterdir()
    copy.write_bytes(b"\x00not marshal")
    assert Registry().load().tasks["nightly"].schedule == "0 2 * * *"


def test_a_tasks_file_with_a_toml_date_loads_without_a_copy(settings, tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text('[tasks.nightly]\ncommand = "true"\ndescription = 2026-12-07\n')
    settings.CRONJOBS_TASKS_FILE = path
    (error,) = Registry().load().errors
    assert error.field == "description"
    assert not list((tmp_path / "__pycache__").glob("tasks.toml.*"))


def test_unknown_top_level_key_in_the_file(settings, tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text('[task.typo]\ncommand = "true"\n')
    settings.CRONJOBS_TASKS_FILE = path
    (error,) = Registry().load().errors
    assert error.field == "task"
    assert "unknown top-level key" in str(error)


def test_code_tasks_are_found_in_jobs_modules():
    registry = Registry().load()
    assert registry.tasks["heartbeat"].kind == "callable"
    assert registry.tasks["heartbeat"].target == "cronjobs.jobs:heartbeat"
    assert registry.tasks["watchdog"].schedule == "*/5 * * * *"


def test_a_jobs_module_that_fails_to_import_is_a_named_error(monkeypatch):
    import importlib

    real_import = importlib.import_module

    def broken(name, *args):
        if name == "cronjobs.jobs":
            raise SyntaxError("invalid syntax (jobs.py, line 3)")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", broken)
    registry = Registry().load()
    (error,) = [e for e in registry.errors if e.task == "cronjobs.jobs"]
    assert str(error) == (
        "task 'cronjobs.jobs': module: cannot be imported: SyntaxError: invalid syntax "
        "(jobs.py, line 3)"
    )


@pytest.mark.parametrize("name", ["evil\n", "evil\x00", "ev\til", "evil\r", "evil\x7f"])
def test_names_with_control_characters_are_rejected_naming_the_task(name):
    with pytest.raises(ConfigError, match="name: contains a control character") as caught:
        build_spec(name, "command", ("true",), {"timeout": 5}, "test")
    assert repr(name) in str(caught.value)


def test_a_newline_in_a_tasks_file_name_is_an_error(settings, tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text('[tasks."evil\\n"]\ncommand = "true"\ntimeout = 5\n')
    settings.CRONJOBS_TASKS_FILE = path
    registry = Registry().load()
    assert "evil\n" not in registry.tasks
    assert [str(e) for e in registry.errors if e.field == "name"] == [
        "task 'evil\\n': name: contains a control character (newline, NUL, ...): "
        "use lower-case letters, digits and _ (max 100)"
    ]


def test_command_env_and_pass_env_are_kept_in_order():
    spec = build_spec(
        "php_env",
        "command",
        ("php", "x.php"),
        {"timeout": 5, "env": {"B": "2", "A": "1"}, "pass_env": ["PGPASSWORD", "PGHOST"]},
        "test",
    )
    assert spec.env == (("A", "1"), ("B", "2"))
    assert spec.pass_env == ("PGPASSWORD", "PGHOST")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"env": {"1BAD": "x"}}, "env: '1BAD' is not a variable name"),
        ({"env": {"A": 3}}, "env: A: 3 is not a string without NUL"),
        ({"env": {"A": "a\x00b"}}, "env: A: 'a\\\\x00b' is not a string without NUL"),
        ({"env": ["A"]}, "env: \\['A'\\] is not a table of strings"),
        ({"pass_env": ["OK", "NOT OK"]}, "pass_env: 'NOT OK' is not a variable name"),
        ({"pass_env": "PGPASSWORD"}, "pass_env: 'PGPASSWORD' is not a list of variable names"),
    ],
)
def test_bad_env_settings_name_the_task_and_the_problem(options, problem):
    with pytest.raises(ConfigError, match=f"task 'bad_env': {problem}"):
        build_spec("bad_env", "command", ("true",), {"timeout": 5, **options}, "test")


def test_function_tasks_take_no_env_they_keep_the_process_environment():
    with pytest.raises(ConfigError, match="env: only command tasks take it"):
        build_spec(
            "func_env", "callable", "tests.jobsapp.jobs:succeed", {"timeout": 5, "env": {}}, "test"
        )


@pytest.mark.django_db
def test_alert_policies_from_the_tasks_file_are_mirrored_to_the_task(settings, tmp_path):
    from cronjobs.supervisor.sync import sync_task

    path = tmp_path / "tasks.toml"
    path.write_text(
        '[tasks.php_sync]\ncommand = "true"\ntimeout = 30\nalert_after = 3\n'
        'success_target = 95\nsuccess_window = 3600\nping_url = "https://hc.example/ping/k"\n'
    )
    settings.CRONJOBS_TASKS_FILE = path
    task = sync_task(Registry().load().tasks["php_sync"])
    assert (task.alert_after, task.success_target, task.success_window) == (3, 95.0, 3600)
    assert task.ping_url == "https://hc.example/ping/k"


@pytest.mark.django_db
def test_check_asks_the_database_nothing_however_many_tasks(settings, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    from cronjobs.supervisor.registry import registry
    from tests.helpers import declared_tasks_toml, queries_of

    original = settings.CRONJOBS_TASKS_FILE

    def checked(count: int) -> int:
        settings.CRONJOBS_TASKS_FILE = tmp_path / f"tasks-{count}.toml"
        settings.CRONJOBS_TASKS_FILE.write_text(declared_tasks_toml(count))
        registry.load(force=True)
        queries = queries_of(lambda: call_command("check", stdout=StringIO()))
        assert len(registry.tasks) >= count
        return queries

    try:
        assert checked(5) == checked(60)
    finally:
        settings.CRONJOBS_TASKS_FILE = original
        registry.load(force=True)
