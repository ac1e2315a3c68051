"""Small pieces every admin page shares: short times, percentages, sizes, links, the stylesheet."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone

from cronjobs.models import Execution


def percent(rate: float | None) -> str:
    """A success rate, already a percent (reporting.stats.success_rate), in whole percent."""
    return "-" if rate is None else f"{rate:.0f}%"


def when(moment: dt.datetime | None) -> str:
    """Short local time for narrow columns: '29 Nov 07:05'."""
    return timezone.localtime(moment).strftime("%d %b %H:%M") if moment else "-"


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


class ControlRoomMedia:
    css = {"all": ("cronjobs/admin.css",)}
