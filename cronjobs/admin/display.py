"""Small pieces every admin page shares: short times, percentages, sizes, links, the stylesheet,
and the 404 of an object page whose id names nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, TypeVar

from django.db.models import Model
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils import timezone

from cronjobs.models import Execution


def percent(rate: float | None) -> str:
    """A success rate, already a percent (reporting.stats.success_rate), in whole percent."""
    return "-" if rate is None else f"{rate:.0f}%"


# The one way a page writes a moment (the read-only fields' DATETIME_FORMAT is the same,
# flagged_cron_project/formats): local time in TIME_ZONE, with the zone's name.
WHEN_FORMAT = "%Y-%m-%d %H:%M %Z"


def when(moment: dt.datetime | None) -> str:
    """A moment in the project's time zone, named: '2026-11-29 07:05 NZDT'; '-' for none."""
    return timezone.localtime(moment).strftime(WHEN_FORMAT) if moment else "-"


def named(names: list[str], most: int = 5) -> str:
    """Task names for a message, as written (never capitalised; the admin capitalises a
    message's first letter, so a message never starts with one): 'a, b and c', 'a, b, c, d, e
    and 3 more'; 'no task' for none."""
    if not names:
        return "no task"
    if len(names) > most:
        return f"{', '.join(names[:most])} and {len(names) - most} more"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def format_size(size: float | None) -> str:
    """Bytes as people read them, in B, KiB, MiB or GiB: '512.0 MiB'."""
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def execution_url(execution: Execution) -> str:
    return reverse("admin:cronjobs_execution_change", args=[execution.pk])


def run_url(run_id: str) -> str:
    return reverse("admin:cronjobs_execution_changelist") + f"?run_id={run_id}"


_M = TypeVar("_M", bound=Model)


class ObjectPagesMixin(Generic[_M]):
    """For a ModelAdmin: an object page (change, delete, history) whose id names no row (not a
    number, too long for one, or gone) is a 404, not Django's redirect to the admin index."""

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> _M:
        # A mixin: the ModelAdmin after it in the admin's bases has the method.
        found: _M | None = super().get_object(  # type: ignore[misc]
            request, object_id, from_field
        )
        if found is None:
            raise Http404(f"no such object: {object_id[:40]!r}")
        return found


class ControlRoomMedia:
    css = {"all": ("cronjobs/admin.css",)}
