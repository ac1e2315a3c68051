"""synctasks: the Task table mirrors the declarations; operators own `enabled`."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from cronjobs.models import Task
from cronjobs.supervisor.registry import registry

pytestmark = pytest.mark.django_db


def _write(path, timeout: int, extra: str = "") -> None:
    path.write_text(f'[tasks.php_sync]\ncommand = "true"\ntimeout = {timeout}\n{extra}')


@pytest.fixture
def tasks_file(tmp_path):
    """Point the shared registry at a temporary tasks file, and back afterwards."""
    from django.conf import settings

    path = tmp_path / "tasks.toml"
    original = settings.CRONJOBS_TASKS_FILE
    settings.CRONJOBS_TASKS_FILE = path
    yield path
    settings.CRONJOBS_TASKS_FILE = original
    registry.load(force=True)


def test_created_updated_retired_and_enabled_kept(tasks_file, capsys):
    path = tasks_file
    _write(path, 30)
    registry.load(force=True)
    call_command("synctasks")
    assert "created: " in capsys.readouterr().out
    task = Task.objects.get(name="php_sync")
    assert task.timeout == 30
    Task.objects.filter(pk=task.pk).update(enabled=False)

    _write(path, 45, 'schedule = "*/15 * * * *"\n')
    registry.load(force=True)
    call_command("synctasks")
    assert "updated: php_sync" in capsys.readouterr().out
    task.refresh_from_db()
    assert (task.timeout, task.schedule, task.enabled) == (45, "*/15 * * * *", False)

    path.write_text("")
    registry.load(force=True)
    call_command("synctasks")
    assert "retired: php_sync" in capsys.readouterr().out
    task.refresh_from_db()
    assert task.retired_at is not None  # kept, with its history

    _write(path, 45)
    registry.load(force=True)
    call_command("synctasks")
    task.refresh_from_db()
    assert task.retired_at is None
