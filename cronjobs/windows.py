"""Maintenance windows (docs/operations.md, "Maintenance windows"): when is a task under
maintenance, and what that means for a run (`skip`) or an alert (`mute`).

A `Calendar` reads every window that can matter (`MaintenanceWindow.objects.live`) in one query
and answers "is task X in a window at t" from memory, so the watchdog asks it of every task at
no query per task. A recurring window's occurrences over the span asked about are worked out
once per window (its cron `start` in its own time zone, each lasting `duration`), not once per
task. Also the window's end an operator asks for (`window_end`), read with the lengths and
moments every door reads (`schedules.parse_duration`, `schedules.parse_moment`).

Writes: creating and ending one-off windows (`open_window`, `end_window`); recurring ones are
written by cronjobs/supervisor/sync.py from the tasks file.
"""

from __future__ import annotations

import bisect
import dataclasses
from datetime import datetime, timedelta

from django.utils import timezone

from cronjobs import schedules
from cronjobs.models import Execution, MaintenanceWindow

Mode = MaintenanceWindow.Mode
# Invocations nobody asked for by hand: a `skip` window skips these. A person's run (runjob
# without --trigger cron, run now in the admin or API) still goes ahead.
SCHEDULED = (Execution.Trigger.CRON, Execution.Trigger.CATCH_UP, Execution.Trigger.AFTER)
MAX_LENGTH = timedelta(days=30)  # a forgotten window silences a task for good
# Past this many occurrences in the span asked about (a window starting every few minutes, a
# weekly task's slot a week back), a window is read moment by moment instead, each distinct
# moment once: the watchdog's tasks share a handful of slot times.
MAX_OCCURRENCES = 300


@dataclasses.dataclass(frozen=True)
class Occurrence:
    """One stretch of time a window is on."""

    window: MaintenanceWindow
    start: datetime
    end: datetime

    @property
    def mode(self) -> str:
        return self.window.mode

    def why(self) -> str:
        """What a skipped row and the pages say: which window, why, until when."""
        until = timezone.localtime(self.end).strftime("%Y-%m-%d %H:%M %Z")
        return f"maintenance window {self.window.label} until {until}: {self.window.reason}"


class Calendar:
    """Every live window, read once; `since` is the earliest moment that will be asked about
    (the watchdog's oldest due slot), so each recurring window's occurrences from then to
    `now` are worked out once."""

    def __init__(
        self,
        now: datetime | None = None,
        since: datetime | None = None,
        windows: list[MaintenanceWindow] | None = None,
    ) -> None:
        self.now = now or timezone.now()
        self.since = min(since or self.now, self.now)
        if windows is None:
            windows = list(MaintenanceWindow.objects.live(self.now))
        self.windows = windows
        # Each window's tasks as a set (None: every task), split once and not once per task.
        self._names = {
            w.pk: None if w.tasks == MaintenanceWindow.ALL else frozenset(w.task_names)
            for w in windows
        }
        self._spans: dict[int, tuple[list[datetime], list[Occurrence]] | None] = {}
        self._moments: dict[tuple[int, datetime], Occurrence | None] = {}

    def covering(
        self, task_name: str, at: datetime | None = None, mode: str = ""
    ) -> Occurrence | None:
        """The occurrence of a window (of `mode`, if given) that `task_name` is in at `at`
        (default: now), the one ending last when several are; None when there is none."""
        at = at or self.now
        found = [
            occurrence
            for window in self.windows
            if (not mode or window.mode == mode) and self._covers(window, task_name)
            if (occurrence := self.occurrence_at(window, at)) is not None
        ]
        return max(found, key=lambda each: each.end, default=None)

    def active(self, at: datetime | None = None) -> list[Occurrence]:
        """Every window on at `at` (default: now), ending soonest first."""
        at = at or self.now
        found = [o for w in self.windows if (o := self.occurrence_at(w, at)) is not None]
        return sorted(found, key=lambda each: each.end)

    def occurrence_at(self, window: MaintenanceWindow, at: datetime) -> Occurrence | None:
        """The window's occurrence that `at` falls in: from its start, up to but not including
        its end."""
        if not window.recurring:
            if window.starts_at and window.ends_at and window.starts_at <= at < window.ends_at:
                return Occurrence(window, window.starts_at, window.ends_at)
            return None
        span = self._span(window)
        if span is not None and self.since <= at <= self.now:
            starts, occurrences = span
            index = bisect.bisect_right(starts, at) - 1
            if index >= 0 and at < occurrences[index].end:
                return occurrences[index]
            return None
        key = (window.pk, at)
        if key not in self._moments:
            self._moments[key] = _recurring_at(window, at)
        return self._moments[key]

    def last_ended(self, window: MaintenanceWindow) -> Occurrence | None:
        """The window's latest occurrence that is over by now."""
        if not window.recurring:
            if window.starts_at and window.ends_at and window.ends_at <= self.now:
                return Occurrence(window, window.starts_at, window.ends_at)
            return None
        length = timedelta(seconds=window.duration)
        # Cron fires on whole seconds at most, so "started by now - length" is "before + 1 s".
        before = self.now - length + timedelta(seconds=1)
        start = schedules.previous_run(window.start, before=before, zone=window.time_zone)
        return Occurrence(window, start, start + length) if start else None

    def next_start(self, window: MaintenanceWindow) -> datetime | None:
        """When the window next begins after now (None for a one-off that has begun)."""
        if not window.recurring:
            return window.starts_at if window.starts_at and window.starts_at > self.now else None
        runs = schedules.next_runs(window.start, 1, self.now, zone=window.time_zone)
        return runs[0] if runs else None

    def _covers(self, window: MaintenanceWindow, task_name: str) -> bool:
        names = self._names.get(window.pk, frozenset(window.task_names))
        return names is None or task_name in names

    def _span(self, window: MaintenanceWindow) -> tuple[list[datetime], list[Occurrence]] | None:
        if window.pk not in self._spans:
            self._spans[window.pk] = _occurrences(window, self.since, self.now)
        return self._spans[window.pk]


def _recurring_at(window: MaintenanceWindow, at: datetime) -> Occurrence | None:
    # The latest start at or before `at`: cron's previous run is strictly before its argument.
    start = schedules.previous_run(
        window.start, before=at + timedelta(microseconds=1), zone=window.time_zone
    )
    if start is None:
        return None
    end = start + timedelta(seconds=window.duration)
    return Occurrence(window, start, end) if at < end else None


def _occurrences(
    window: MaintenanceWindow, since: datetime, now: datetime
) -> tuple[list[datetime], list[Occurrence]] | None:
    """The window's occurrences that overlap [since, now], by start; None past
    MAX_OCCURRENCES."""
    length = timedelta(seconds=window.duration)
    first = _recurring_at(window, since)
    found = [first] if first is not None else []
    after = since
    while True:
        batch = schedules.next_runs(window.start, 50, after, zone=window.time_zone)
        found += [Occurrence(window, start, start + length) for start in batch if start <= now]
        if len(found) > MAX_OCCURRENCES:
            return None
        if len(batch) < 50 or batch[-1] > now:
            break
        after = batch[-1]
    return [each.start for each in found], found


def window_end(length: str = "", until: str = "", now: datetime | None = None) -> datetime:
    """When a one-off window asked for at any door ends: `length` from now ('2h', '1h30m') or
    `until`, an ISO 8601 date and time (in TIME_ZONE without an offset). Exactly one of the
    two; ValueError names what is wrong. `check_end` checks the end itself."""
    now = now or timezone.now()
    if bool(length.strip()) == bool(until.strip()):
        raise ValueError("give either how long the window lasts (--for) or until when (--until)")
    if length.strip():
        return now + schedules.parse_duration(length)
    return schedules.parse_moment(until)


def check_end(end: datetime, now: datetime | None = None) -> datetime:
    """A one-off window's end must lie ahead, and within MAX_LENGTH."""
    now = now or timezone.now()
    if end <= now:
        raise ValueError(f"{end.isoformat()} is not in the future")
    if end > now + MAX_LENGTH:
        raise ValueError(f"{end.isoformat()} is more than {MAX_LENGTH.days} days ahead")
    return end


def open_window(
    tasks: list[str], mode: str, reason: str, ends_at: datetime, by: str
) -> MaintenanceWindow:
    """A one-off window from now to `ends_at` over `tasks` (names, or ["*"])."""
    now = timezone.now()
    return MaintenanceWindow.objects.create(
        tasks=",".join(tasks),
        mode=mode,
        reason=reason,
        starts_at=now,
        ends_at=ends_at,
        created_by=by[:150],
        created_at=now,
    )


def end_window(window: MaintenanceWindow, by: str) -> bool:
    """End a one-off window now, by compare-and-set on its end; False when it was over
    already (or another door ended it a moment ago)."""
    now = timezone.now()
    done = MaintenanceWindow.objects.filter(
        pk=window.pk, recurring=False, ends_at=window.ends_at, ends_at__gt=now
    ).update(ends_at=now, ended_by=by[:150])
    if done:
        window.refresh_from_db()
    return bool(done)
