"""`manage.py check` fails when a task declaration is invalid (design section 5)."""

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
            hint="Fix the declaration; see README.md, Declaring tasks.",
            obj=error.task,
            id="cronjobs.E001",
        )
        for error in registry.errors
    ]
