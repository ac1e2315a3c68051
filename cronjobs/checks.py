"""`manage.py check` fails when a task declaration is invalid (docs/configuration.md, "Task
settings")."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks


@checks.register("cronjobs")
def check_task_declarations(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    from cronjobs.supervisor.registry import registry

    registry.load()
    return [
        checks.Error(
            str(error),
            hint="Fix the declaration; see docs/configuration.md, Task settings.",
            obj=error.task,
            id="cronjobs.E001",
        )
        for error in registry.errors
    ]
