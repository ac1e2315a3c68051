"""All-time attempt counts by task and status, for Prometheus counters, at the cost of a small
index range per scrape instead of a count of the whole history.

The counter is a carried-forward tally (OutcomeTally: every execution that started before
TallyMark.upto, kept up by cronjobs.history.advance_tally) plus the figures since the mark,
read like every window (reporting.stats: the rollups, and the history for the current hour).
Deleting old history (prune_history) leaves the tally, and so the counters, untouched.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from cronjobs.models import OutcomeTally, TallyMark
from cronjobs.reporting import stats


def counts(now: dt.datetime | None = None) -> dict[tuple[int, str], int]:
    """(task id, status) -> attempts and skips ever recorded, running ones included."""
    now = now or timezone.now()
    mark = TallyMark.current()
    totals = {(row.task_id, row.status): row.count for row in OutcomeTally.objects.all()}
    # The days since the mark from the rollups (stats), not by counting their rows; the
    # window runs past now so a row another host's clock started ahead of ours counts too.
    since_mark = stats.task_summaries(mark, now + dt.timedelta(days=1), with_p95=False)
    for task_id, summary in since_mark.items():
        for status in stats.OUTCOMES:
            if n := getattr(summary, status):
                totals[task_id, status] = totals.get((task_id, status), 0) + n
    return totals
