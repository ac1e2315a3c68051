"""Keeping the history bounded: `prune_history` (command and daily task) deletes old rows from
the tables and applies the log retention (cronjobs.supervisor.logs.retain) to LOG_DIR.

Rollups (cronjobs.models.Rollup) and the Prometheus tallies (OutcomeTally) are never deleted
here: they outlive the raw rows they were added up from. Executions go only once the tally
has counted them (`cronjobs.history.advance_tally`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from time import sleep

from django.conf import settings
from django.db.models import Max, Min, Model, QuerySet
from django.utils import timezone

from cronjobs import history
from cronjobs.models import Alert, Execution
from cronjobs.supervisor import logs

# Called after each batch with the table's name, the rows deleted from it so far and the share
# of its old primary-key range walked (0 to 1).
Progress = Callable[[str, int, float], None]


def prune_logs(days: int | None = None) -> logs.Retained:
    """Daily log files beyond CRONJOBS_LOG_RETENTION_DAYS go, older than a day are gzipped."""
    return logs.retain(days if days is not None else settings.CRONJOBS_LOG_RETENTION_DAYS)


def prune(
    days: int = 90,
    batch_size: int = 5000,
    pause: float | None = None,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Delete executions started, and alerts resolved, more than `days` ago; running attempts
    stay whatever their age (the watchdog abandons dead ones first).

    Deletes in primary-key batches: each DELETE covers at most `batch_size` rows and commits on
    its own, then the pruner sleeps `pause` seconds (CRONJOBS_PRUNE_PAUSE_MS by default), so the
    runners' inserts and updates never queue behind it for long and replication lag stays small,
    however much history has piled up."""
    if pause is None:
        pause = settings.CRONJOBS_PRUNE_PAUSE_MS / 1000
    now = timezone.now()
    # The Prometheus counters count rows before their tally mark from the tally, and the rest
    # live: move the mark first, and never delete a row it has not passed, or the counters
    # would drop what goes (a --days shorter than history.FREEZE keeps that much more).
    cutoff = now - timedelta(days=days)
    old_runs = Execution.objects.filter(started_at__lt=min(cutoff, history.advance_tally(now)))
    old_alerts = Alert.objects.filter(resolved_at__lt=cutoff, state=Alert.State.RESOLVED)
    walk = _Walk(batch_size, pause, progress)
    return {
        # The range comes from the started_at index alone; status is checked by each DELETE.
        "executions": walk.delete(
            "executions", old_runs.exclude(status=Execution.Status.RUNNING), old_runs
        ),
        "alerts": walk.delete("alerts", old_alerts, old_alerts),
    }


class _Walk:
    """Deletes by walking the primary key in ranges of `batch_size` rows.

    Why ranges: fetching each batch as `old rows ORDER BY pk LIMIT n` makes MySQL read every
    old row through the started_at index and sort them all, for every batch: hopeless with
    millions of old rows. A primary-key range is read in key order and costs the same at the
    first batch as at the thousandth. Rows arrive roughly, not strictly, in time order, so each
    DELETE still carries the full condition: a row in the range that is newer than the cutoff,
    or still running, stays. Under READ COMMITTED (the MySQL setting) the DELETE locks only the
    rows it removes, all older than the cutoff, which no runner writes to."""

    def __init__(self, batch_size: int, pause: float, progress: Progress | None) -> None:
        self.batch_size, self.pause, self.progress = batch_size, pause, progress

    def delete(self, name: str, doomed: QuerySet[Model], old: QuerySet[Model]) -> int:
        """Delete `doomed` within the primary-key range that `old` (a superset) spans."""
        span = old.order_by().aggregate(first=Min("pk"), last=Max("pk"))
        first, last = span["first"], span["last"]
        deleted, start = 0, first
        while start is not None and start <= last:
            end = self.range_end(doomed.model, start)
            batch = doomed.filter(pk__gte=start, pk__lte=last)
            if end is not None:
                batch = batch.filter(pk__lt=end)
            deleted += batch.delete()[0]
            if self.progress:
                walked = 1.0 if end is None or end > last else (end - first) / (last - first + 1)
                self.progress(name, deleted, walked)
            if end is None or end > last:
                break
            start = end
            sleep(self.pause)
        return deleted

    def range_end(self, model: type[Model], start: int) -> int | None:
        """The first primary key after `batch_size` rows from `start` on, or None if fewer
        rows are left: read along the primary key, so ids left sparse by earlier prunes or
        rolled-back inserts still give full batches."""
        keys = model._default_manager.filter(pk__gte=start).order_by("pk")
        following = keys.values_list("pk", flat=True)[self.batch_size : self.batch_size + 1]
        return next(iter(following), None)
