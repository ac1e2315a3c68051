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

_ALWAYS = tuple(s for s in STORED if s.stored is Stored.ALWAYS)
# The columns spec_values gives, in its order.
COLUMNS = (*(s.name for s in _ALWAYS), "kind", "source", "target", "retired_at")
_RETIRED = 2 + COLUMNS.index("retired_at")  # in a row read as ("name", "pk", *COLUMNS)


def spec_values(spec: TaskSpec) -> dict[str, Any]:
    """The Task row's values the declaration owns: identity, and every setting stored always
    (`enabled` is stored on creation only: operators own it afterwards)."""
    values = {s.name: s.stored_value(spec) for s in _ALWAYS}
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
        # Tuples of the declaration's columns, not Task instances: building 10,000 model
        # objects was a third of a sync that changes nothing.
        rows = {row[0]: row for row in Task.objects.values_list("name", "pk", *COLUMNS)}
        created: list[Task] = []
        updated: list[Task] = []
        unchanged: list[str] = []
        fields = {"updated_at"}
        for spec in specs.values():
            values, row = spec_values(spec), rows.get(spec.name)
            if row is None:
                created.append(Task(name=spec.name, **values, **_initial_values(spec)))
                continue
            changed = [f for f, had in zip(COLUMNS, row[2:], strict=True) if had != values[f]]
            if not changed:
                unchanged.append(spec.name)
                continue
            fields.update(changed)
            # Every compared column holds the declaration's value, so writing the union of
            # the changed columns of all rows writes nothing that was not due.
            updated.append(Task(pk=row[1], name=spec.name, updated_at=timezone.now(), **values))
        # A row another synctasks made meanwhile is left to it, as get_or_create would.
        Task.objects.bulk_create(created, batch_size=500, ignore_conflicts=True)
        Task.objects.bulk_update(updated, sorted(fields), batch_size=500)
        # From the rows already read: a NOT IN of every declared name is one bound parameter
        # per task.
        gone = {
            name: row[1] for name, row in rows.items() if name not in specs and not row[_RETIRED]
        }
        Task.objects.filter(pk__in=gone.values()).update(retired_at=timezone.now())
        return {
            "created": [task.name for task in created],
            "updated": [task.name for task in updated],
            "unchanged": unchanged,
            "retired": sorted(gone),
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
