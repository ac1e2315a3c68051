"""The compatibility views on MySQL/MariaDB (docs/api.md, "SQL views"): the seed's four views,
with `task_name` carrying CRONJOBS_LEGACY_PREFIX so an operator's existing filters on the V2
names keep matching, and `smart_cron_alerts`, where V2 kept its alerts. Cancelled attempts
(stopped by an operator) are left out, as the Python figures leave them out.

The four views are those of cronjobs/migrations/0003_compatibility_views.py with `memory_used`
the job's own figure (0007_i11_memory_added.py); only `task_name` changes. The views are
created by migration 0009 and again after every `migrate` (cronjobs/apps.py), so a changed
prefix takes effect at the next `manage.py migrate`. SQLite gets no views (see 0003).
"""

from __future__ import annotations

import importlib
from typing import Any

from cronjobs import legacy

seed = importlib.import_module("cronjobs.migrations.0003_compatibility_views")
JOB_MEMORY = "COALESCE(e.memory_added_bytes, e.peak_rss_bytes)"
# A run an operator stopped says nothing of the job's health, as in Execution.objects.finished():
# V2 had no such status, so its views leave cancelled attempts out.
FINISHED = "e.attempt >= 1 AND e.status NOT IN ('running', 'cancelled')"
local = seed.local

ALERTS = """
CREATE OR REPLACE VIEW smart_cron_alerts AS
SELECT a.id AS id,
       {task_name} AS task_name,
       a.kind AS alert_type,
       a.severity AS severity,
       a.state AS status,
       a.message AS message,
       a.occurrences AS occurrences,
       a.state = 'acknowledged' AS acknowledged,
       a.open_key IS NULL AS resolved,
       {created_at} AS created_at,
       {last_seen} AS last_seen,
       {notified_at} AS notified_at,
       {acknowledged_at} AS acknowledged_at,
       {resolved_at} AS resolved_at
FROM cronjobs_alert a
JOIN cronjobs_task t ON t.id = a.task_id
"""


def sql_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def definitions(prefix: str) -> dict[str, str]:
    """View name -> CREATE OR REPLACE VIEW statement, for task names with `prefix`."""
    task_name = f"CONCAT({sql_literal(prefix)}, t.name)"
    views = {
        name: sql.replace("e.peak_rss_bytes", JOB_MEMORY)
        .replace("t.name AS task_name", f"{task_name} AS task_name")
        .replace(seed.FINISHED, FINISHED)
        for name, sql in seed.VIEWS.items()
    }
    views["smart_cron_alerts"] = ALERTS.format(
        task_name=task_name,
        created_at=local("a.first_seen"),
        last_seen=local("a.last_seen"),
        notified_at=local("a.notified_at"),
        acknowledged_at=local("a.acknowledged_at"),
        resolved_at=local("a.resolved_at"),
    )
    return views


def create(schema_editor: Any) -> None:
    """(Re)create every view with the configured prefix; nothing on SQLite."""
    if schema_editor.connection.vendor != "mysql":
        return
    problem = legacy.prefix_problem(legacy.prefix())
    if problem:
        raise ValueError(f"CRONJOBS_LEGACY_PREFIX: {problem}")
    for sql in definitions(legacy.prefix()).values():
        schema_editor.execute(sql)
