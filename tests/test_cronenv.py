"""The settings check of `crontab add` (cronjobs.supervisor.cronenv): a fresh interpreter with
cron's environment reports the settings an installed line would get. No crontab is touched."""

from __future__ import annotations

import shlex

import pytest

from cronjobs.supervisor.cronenv import settings_fingerprint
from cronjobs.supervisor.crontab import cron_fingerprint, environment_problems
from tests.helpers import database_url


@pytest.fixture
def line_settings(settings, tmp_path):
    """Lines whose own assignments name this process's database, logs and tasks file."""
    settings.LOG_DIR = tmp_path
    settings.CRONTAB_DJANGO_SETTINGS_MODULE = "tests.settings"
    env = {
        "DATABASE_URL": database_url(),
        "LOG_DIR": str(tmp_path),
        "CRONJOBS_TASKS_FILE": str(settings.CRONJOBS_TASKS_FILE),
        "TIME_ZONE": settings.TIME_ZONE,
    }
    settings.CRONTAB_COMMAND_PREFIX = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return settings


@pytest.mark.django_db
def test_crons_interpreter_reports_the_same_settings_as_this_process(line_settings):
    assert cron_fingerprint() == {k: list(v) for k, v in settings_fingerprint().items()}
    assert environment_problems() == []


@pytest.mark.django_db
def test_a_database_the_line_does_not_name_is_reported_with_what_cron_would_use(line_settings):
    line_settings.CRONTAB_COMMAND_PREFIX = " ".join(
        word
        for word in shlex.split(line_settings.CRONTAB_COMMAND_PREFIX)
        if not word.startswith("DATABASE_URL=")
    )
    (problem,) = environment_problems()
    assert problem.startswith("DATABASE_URL differs under cron")
    assert "put it in .env" in problem


def test_settings_that_cannot_load_are_named(settings):
    settings.CRONTAB_DJANGO_SETTINGS_MODULE = "no_such_project.settings"
    (problem,) = environment_problems()
    assert "could not load the settings (ModuleNotFoundError" in problem
