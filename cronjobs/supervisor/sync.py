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
    by what happened to them, for the command to report."""
    specs = registry.load().tasks
    report: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": [], "retired": []}
    with transaction.atomic():
        for spec in specs.values():
            report[_sync(spec)[1]].append(spec.name)
        gone = Task.objects.filter(retired_at__isnull=True).exclude(name__in=list(specs))
        report["retired"] = sorted(gone.values_list("name", flat=True))
        gone.update(retired_at=timezone.now())
        report["windows"] = sync_windows()
    return report


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
