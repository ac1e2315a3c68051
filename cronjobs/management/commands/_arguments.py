"""What several commands share (the leading underscore keeps Django from listing it as one)."""

from __future__ import annotations

from django.core.management.base import CommandError

from cronjobs.models import Task

EXIT_USAGE = 2


def task_named(name: str) -> Task:
    """The task a command names exactly, or exit 2 with the names it could have been."""
    task = Task.objects.named(name)
    if task is None:
        known = ", ".join(Task.objects.order_by("name").values_list("name", flat=True))
        raise CommandError(
            f"unknown task {name!r}. Known tasks: {known or '(none)'}", returncode=EXIT_USAGE
        )
    return task
