"""synctasks: the Task table mirrors the declarations; operators own `enabled`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from cronjobs.models import Task
from cronjobs.supervisor.registry import registry
from tests.helpers import declared_tasks_toml, queries_of

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


def test_queries_do_not_grow_with_the_number_of_unchanged_tasks(tasks_file):
    def synced(count: int) -> int:
        tasks_file.write_text(declared_tasks_toml(count))
        registry.load(force=True)
        call_command("synctasks", stdout=StringIO())  # creates them
        return queries_of(lambda: call_command("synctasks", stdout=StringIO()))

    assert synced(5) == synced(60)
    assert Task.objects.filter(retired_at__isnull=True).count() >= 60


def test_sixty_new_tasks_are_created_in_one_write(tasks_file):
    tasks_file.write_text(declared_tasks_toml(60))
    registry.load(force=True)
    assert queries_of(lambda: call_command("synctasks", stdout=StringIO())) <= 8
    assert Task.objects.filter(name__startswith="declared_").count() == 60
