"""cronjobs/tasksettings.py: one declaration per task setting, and every reader derives from it
(the registry's checks, the sync to the Task row, the admin's task page, the API's task body)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.admin.sites import site
from django.urls import reverse

from cronjobs.models import Task
from cronjobs.supervisor.registry import ConfigError, build_spec
from cronjobs.supervisor.sync import sync_task
from cronjobs.tasksettings import SETTINGS, STORED, Setting, Stored, TaskSpec
from tests.api_fixtures import client_for
from tests.helpers import make_user

ROOT = Path(__file__).resolve().parent.parent
# Task columns that are not declared settings: identity, and what operators and the engine own.
NOT_SETTINGS = {
    "id",
    "name",
    "kind",
    "target",
    "source",
    "retired_at",
    "created_at",
    "updated_at",
    "snoozed_until",
    "caught_up_slot",
    "claimed_slot",
    "claimed_by",
}
EVERYTHING = {
    "schedule": "*/5 * * * *",
    "time_zone": "Europe/London",
    "start_deadline": 90,
    "jitter": 12.5,
    "description": "every setting set",
    "max_attempts": 2,
    "retry_delay": 1.5,
    "memory_limit": "64M",
    "memory_warn": "48M",
    "slow_after": 20,
    "circuit_breaker": False,
    "alert_on_failure": False,
    "alert_after": 3,
    "success_target": 95,
    "success_window": 3600,
    "duration_alerts": "auto",
    "duration_baseline": 30,
    "ping_url": "http://127.0.0.1:9/ping/secret-uuid",
    "log_level": "debug",
    "priority": 2,
    "enabled": False,
    "env": {"LANG": "C"},
    "pass_env": ["PGPASSWORD"],
    "after": ["upstream_one"],
    "hosts": ["web1", "web2"],
    "catch_up": True,
    "overlap": "replace",
    "on_lease_lost": "continue",
}


def everything_spec() -> TaskSpec:
    return build_spec("everything", "command", ("true",), {"timeout": 30, **EVERYTHING}, "test")


def test_every_field_of_taskspec_but_its_identity_is_a_declared_setting():
    identity = {"name", "kind", "target", "source"}
    assert {f.name for f in dataclasses.fields(TaskSpec)} == identity | set(SETTINGS)
    assert all(isinstance(s, Setting) and s.name for s in SETTINGS.values())


def test_the_test_declaration_sets_every_setting_to_something_else_than_its_default():
    """So the sync and API tests below cover a new setting as soon as it is declared."""
    assert set(EVERYTHING) | {"timeout"} == set(SETTINGS)
    spec = everything_spec()
    assert all(getattr(spec, name) != s.default for name, s in SETTINGS.items())


def test_every_stored_setting_has_a_task_column_and_every_task_column_is_declared():
    columns = {field.name for field in Task._meta.concrete_fields}
    stored = {s.name for s in STORED}
    assert stored <= columns
    assert columns - stored == NOT_SETTINGS


def test_each_task_column_takes_its_default_and_help_from_the_declaration():
    from django.db.models import NOT_PROVIDED

    for setting in STORED:
        field = Task._meta.get_field(setting.name)
        assert field.help_text == setting.help, setting.name
        if field.default is not NOT_PROVIDED:
            assert field.default == setting.default, setting.name
        else:  # required, or stored as it takes effect (`effective_slow_after`)
            assert setting.required or setting.default in (None, "", ()), setting.name


@pytest.mark.django_db
def test_sync_stores_every_stored_setting_as_it_takes_effect():
    task = sync_task(everything_spec())
    task.refresh_from_db()
    assert task.schedule == "*/5 * * * *"
    assert task.retry_delay == 1.5
    assert (task.memory_limit, task.memory_warn) == (64 * 2**20, 48 * 2**20)
    assert (task.log_level, task.success_target) == ("DEBUG", 95.0)
    assert (task.after, task.hosts) == ("upstream_one", "web1,web2")
    assert task.enabled is False  # the initial state, from the declaration
    for setting in STORED:
        assert getattr(task, setting.name) == setting.stored_value(everything_spec())


@pytest.mark.django_db
def test_sync_leaves_the_operators_enabled_flag_alone_after_creation():
    task = sync_task(everything_spec())
    Task.objects.filter(pk=task.pk).update(enabled=True)
    changed = build_spec("everything", "command", ("true",), {**EVERYTHING, "timeout": 60}, "t")
    task = sync_task(changed)
    assert (task.timeout, task.enabled) == (60, True)


def test_command_only_settings_are_refused_on_a_function_task():
    for setting in (s for s in SETTINGS.values() if s.command_only):
        value = EVERYTHING[setting.name]
        with pytest.raises(ConfigError, match=f"{setting.name}: only command tasks take it"):
            build_spec("func", "callable", "m:f", {"timeout": 5, setting.name: value}, "t")


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_setting_refuses_a_value_of_the_wrong_type_naming_task_and_field(name):
    wrong = object()
    with pytest.raises(ConfigError) as caught:
        build_spec("typed", "command", ("true",), {"timeout": 5, name: wrong}, "t")
    assert str(caught.value).startswith(f"task 'typed': {name}: ")
    assert SETTINGS[name].wanted in str(caught.value)


@pytest.mark.django_db
def test_the_admin_task_page_shows_every_stored_setting_in_its_section(client):
    sections = dict(site._registry[Task].fieldsets)
    for setting in STORED:
        assert setting.display_field in sections[str(setting.group) or None]["fields"]
    task = sync_task(everything_spec())
    client.force_login(make_user("viewer", "view_task"))
    page = client.get(reverse("admin:cronjobs_task_change", args=[task.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "64.0 MiB" in text and "web1, web2" in text
    assert "secret-uuid" not in text  # the ping URL is shown redacted


@pytest.mark.django_db
def test_the_api_task_body_has_every_public_stored_setting_and_no_secret():
    sync_task(everything_spec())
    body = client_for("read_only").get("/api/tasks/everything/").json()
    public = [s for s in STORED if s.api_name]
    assert {s.api_name for s in public} <= set(body)
    assert body["memory_limit_bytes"] == 64 * 2**20
    assert (body["after"], body["hosts"]) == (["upstream_one"], ["web1", "web2"])
    assert "ping_url" not in body and "secret-uuid" not in str(body)
    assert {s.name for s in SETTINGS.values() if s.stored is Stored.NEVER} & set(body) == set()


def test_settings_table_script_prints_the_generated_table():
    result = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "settings-table")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("| setting | default | parsing | meaning |")
    assert "| `timeout` | required | whole number, above 0 |" in result.stdout
