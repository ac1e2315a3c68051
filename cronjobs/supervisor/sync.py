"""Mirror the registry into the Task table (`manage.py synctasks`, after `migrate`, and for the
one task a `runjob` call is about to run)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from cronjobs.models import Task
from cronjobs.supervisor.registry import TaskSpec, registry

# Task fields owned by the declaration; `enabled` belongs to operators and is set only once.
SPEC_FIELDS = (
    "kind",
    "source",
    "schedule",
    "description",
    "timeout",
    "max_attempts",
    "retry_delay",
    "memory_limit",
    "circuit_breaker",
    "log_level",
    "alert_on_failure",
    "priority",
    "alert_after",
    "success_target",
    "success_window",
    "ping_url",
    "catch_up",
)


def spec_values(spec: TaskSpec) -> dict[str, Any]:
    values = {field: getattr(spec, field) for field in SPEC_FIELDS}
    values["target"] = spec.target_text
    values["slow_after"] = spec.effective_slow_after
    values["memory_warn"] = spec.effective_memory_warn
    values["after"] = ",".join(spec.after)
    values["hosts"] = ",".join(spec.hosts)
    values["retired_at"] = None
    return values


def sync_task(spec: TaskSpec) -> Task:
    """The task's row, created or brought up to date. One query when nothing changed."""
    return _sync(spec)[0]


def _sync(spec: TaskSpec) -> tuple[Task, str]:
    values = spec_values(spec)
    task = Task.objects.filter(name=spec.name).first()
    if task is None:
        task, created = Task.objects.get_or_create(
            name=spec.name, defaults={**values, "enabled": spec.enabled}
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
    return report
