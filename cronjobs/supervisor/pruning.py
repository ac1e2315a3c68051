"""Keeping the history bounded: `prune_history` (command and daily task) deletes old rows from
the tables and applies the log retention (cronjobs.supervisor.logs.retain) to LOG_DIR."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from cronjobs.models import Alert, Execution
from cronjobs.supervisor import logs


def prune_logs(days: int | None = None) -> logs.Retained:
    """Daily log files beyond CRONJOBS_LOG_RETENTION_DAYS go, older than a day are gzipped."""
    return logs.retain(days if days is not None else settings.CRONJOBS_LOG_RETENTION_DAYS)


def prune(days: int = 90, batch_size: int = 5000) -> dict[str, int]:
    """Delete executions started, and alerts resolved, more than `days` ago.

    Deletes in primary-key batches: each DELETE touches at most `batch_size` rows and commits
    on its own, so MySQL never holds locks on the big table for long and replication lag stays
    small, however much history has piled up."""
    cutoff = timezone.now() - timedelta(days=days)
    old_runs = Execution.objects.filter(started_at__lt=cutoff).exclude(
        status=Execution.Status.RUNNING
    )
    old_alerts = Alert.objects.filter(Q(resolved_at__lt=cutoff), state=Alert.State.RESOLVED)
    return {
        "executions": _delete_in_batches(old_runs, batch_size),
        "alerts": _delete_in_batches(old_alerts, batch_size),
    }


def _delete_in_batches(queryset: QuerySet[Model], batch_size: int) -> int:
    deleted = 0
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += queryset.model._default_manager.filter(pk__in=ids).delete()[0]
