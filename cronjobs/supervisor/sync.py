"""Mirror the registry into the Task table (`manage.py synctasks`, after `migrate`, and for the
one task a `runjob` call is about to run), and the tasks file's recurring maintenance windows
into the MaintenanceWindow table (`synctasks`, after `migrate`, and each watchdog pass)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from cronjobs.models import MaintenanceWindow, Task
from cronjobs.supervisor.registry import WindowSpec, registry
from cronjobs.tasksettings import STORED, Stored, TaskSpec


def spec_values(spec: TaskSpec) -> dict[str, Any]:
    """The Task row's values the declaration owns: identity, and every setting stored always
    (`enabled` is stored on creation only: operators own it afterwards)."""
    values = {s.name: s.stored_value(spec) for s in STORED if s.stored is Stored.ALWAYS}
    values.update(kind=spec.kind, source=spec.source, target=spec.target_text, retired_at=None)
    return values


def sync_task(spec: TaskSpec) -> Task:
    """The task's row, created or brought up to date. One query when nothing changed."""
    return _sync(spec)[0]


def _sync(spec: TaskSpec) -> tuple[Task, str]:
    values = spec_values(spec)
    task = Task.objects.filter(name=spec.name).first()
    if task is None:
        task, created = Task.objects.get_or_create(
            name=spec.name, defaults={**values, **_initial_values(spec)}
        )
        if created:
            return task, "created"
    changed = [field for field, value in values.items() if getattr(task, field) != value]
    if not changed:
        return task, "unchanged"
    for field in changed:
        setattr(task, field, values[field])
    task.save(update_fields=[*changed, "updated_at"])
    return task, "updated"


def _initial_values(spec: TaskSpec) -> dict[str, Any]:
    return {s.name: s.stored_value(spec) for s in STORED if s.stored is Stored.ON_CREATE}


def sync_all() -> dict[str, list[str]]:
    """Sync every declared task and retire rows whose declaration is gone. Returns task names
    by what happened to them, for the command to report. One read of every row, then one
    write per batch of created or changed rows: the same handful of queries for ten tasks or
    ten thousand when nothing changed."""
    specs = registry.load().tasks
    with transaction.atomic():
        rows = {task.name: task for task in Task.objects.all()}
        created: list[Task] = []
        updated: list[Task] = []
        unchanged: list[str] = []
        fields = {"updated_at"}
        for spec in specs.values():
            values, task = spec_values(spec), rows.get(spec.name)
            if task is None:
                created.append(Task(name=spec.name, **values, **_initial_values(spec)))
                continue
            changed = [field for field, value in values.items() if getattr(task, field) != value]
            for field in changed:
                setattr(task, field, values[field])
            fields.update(changed)
            if changed:
                task.updated_at = timezone.now()
                updated.append(task)
            else:
                unchanged.append(task.name)
        # A row another synctasks made meanwhile is left to it, as get_or_create would.
        Task.objects.bulk_create(created, batch_size=500, ignore_conflicts=True)
        Task.objects.bulk_update(updated, sorted(fields), batch_size=500)
        # From the rows already read: a NOT IN of every declared name is one bound parameter
        # per task.
        gone = [t for name, t in rows.items() if name not in specs and t.retired_at is None]
        Task.objects.filter(pk__in=[t.pk for t in gone]).update(retired_at=timezone.now())
        return {
            "created": [task.name for task in created],
            "updated": [task.name for task in updated],
            "unchanged": unchanged,
            "retired": sorted(task.name for task in gone),
            "windows": sync_windows(),
        }


def window_values(spec: WindowSpec) -> dict[str, Any]:
    return {
        "tasks": ",".join(spec.tasks),
        "mode": spec.mode,
        "reason": spec.reason,
        "start": spec.start,
        "duration": spec.duration,
        "time_zone": spec.time_zone,
        "retired_at": None,
    }


def sync_windows() -> list[str]:
    """Bring the recurring windows in step with the tasks file: create or update each declared
    one, retire those whose table is gone. Returns the names of the windows that changed; one
    query when nothing did."""
    declared = registry.load().windows
    rows = {str(row.name): row for row in MaintenanceWindow.objects.filter(recurring=True)}
    changed = []
    for name, spec in declared.items():
        values, row = window_values(spec), rows.get(name)
        if row is None:
            MaintenanceWindow.objects.create(name=name, recurring=True, **values)
        elif any(getattr(row, field) != value for field, value in values.items()):
            MaintenanceWindow.objects.filter(pk=row.pk).update(**values)
        else:
            continue
        changed.append(name)
    gone = [n for n, row in rows.items() if n not in declared and row.retired_at is None]
    if gone:
        MaintenanceWindow.objects.filter(recurring=True, name__in=gone).update(
            retired_at=timezone.now()
        )
    return sorted([*changed, *gone])
