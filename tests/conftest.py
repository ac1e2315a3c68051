"""Shared fixtures. The same suites run on SQLite and on MariaDB (DATABASE_URL=mysql://...);
tests marked `mariadb` only make sense on MariaDB and skip on SQLite. Helpers that are not
fixtures (wait_for, the row builders) live in tests/helpers.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cronjobs.supervisor.registry import build_spec
from tests.helpers import ROOT, database_url


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    vendor = "mysql" if "mysql" in settings.DATABASES["default"]["ENGINE"] else "sqlite"
    for item in items:
        if "mariadb" in item.keywords and vendor != "mysql":
            item.add_marker(
                pytest.mark.skip(reason="MariaDB-only; run with DATABASE_URL=mysql://...")
            )


@pytest.fixture(autouse=True)
def empty_cache():
    """The cache holds the dashboard's rendered content and the write-rate counts
    (cronjobs.actions); each test starts afresh."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def log_dir(tmp_path, settings):
    """Each test writes its daily logs and spool into its own directory."""
    path = tmp_path / "logs"
    settings.LOG_DIR = path
    return path


@pytest.fixture
def job_dir(tmp_path, monkeypatch):
    """Where the test jobs leave evidence (FC_TEST_DIR); inherited by forked attempts."""
    path = tmp_path / "job"
    path.mkdir()
    monkeypatch.setenv("FC_TEST_DIR", str(path))
    return path


@pytest.fixture
def make_spec():
    """A TaskSpec for a function in tests/jobsapp/jobs.py, validated like any declaration."""

    def make(func: str, name: str | None = None, **options):
        options.setdefault("timeout", 30)
        options.setdefault("retry_delay", 0)
        return build_spec(name or func, "callable", f"tests.jobsapp.jobs:{func}", options, "test")

    return make


@pytest.fixture
def manage(log_dir):
    """Run `manage.py` in a child process against the test database. Tests that use it need
    committed data: mark them django_db(transaction=True). `manage.env()` gives the same
    environment for tests that start the process themselves (Popen)."""

    def env(extra: dict | None = None) -> dict:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url(),
            "LOG_DIR": str(log_dir),
            **(extra or {}),
        }

    def run(*args: str, env_extra: dict | None = None, timeout: float = 120):
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=env(env_extra),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    run.env = env
    run.argv = lambda *args: [sys.executable, str(ROOT / "manage.py"), *args]
    return run
