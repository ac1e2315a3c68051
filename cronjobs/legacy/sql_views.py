"""The compatibility views on MySQL/MariaDB (docs/api.md, "SQL views"), so an operator's existing
SQL keeps working: the seed's four (flagged_products_cron_metrics,
vw_flagged_products_cron_performance, vw_flagged_products_cron_daily_trends and
vw_flagged_products_cron_health), with `task_name` carrying CRONJOBS_LEGACY_PREFIX so filters on
the V2 names keep matching, and `smart_cron_alerts`, where V2 kept its alerts. Cancelled attempts
(stopped by an operator) are left out, as the Python figures leave them out.

`SEED_VIEWS` are the seed's views as migration 0003 created them; `definitions` derives today's
from them: `memory_used` the job's own figure (as since migration 0007), the prefix, and no
cancelled attempts. They are created by migration 0009 and again after every `migrate`
(cronjobs/apps.py), so a changed prefix takes effect at the next `manage.py migrate`.

Times: Django stores UTC. The seed's queries compare with NOW() and CURDATE(), which are in the
session's time zone, so the views show times in the session's zone too. A view may not read
@@session.time_zone, and CONVERT_TZ needs the time zone tables for named zones, so each UTC
value goes through the epoch instead: FROM_UNIXTIME(TIMESTAMPDIFF(SECOND, epoch, utc)) renders
it in whatever zone the session uses (SYSTEM, an offset or a name), DST included, on a fresh
server without time zone tables. Filters on the raw UTC columns (UTC_TIMESTAMP()) keep the
30-day and 24-hour windows on the started_at indexes.

SQLite gets no views: the seed's SQL (NOW(), DATE_SUB, CURDATE) is MySQL's dialect and would
not run there anyway; cronjobs.reporting.stats gives the same figures on any database.

The health view keeps the seed's fixed cut-offs (a 24-hour success rate below 90 % is a warning,
below 50 % critical, compared in whole numbers so rounding cannot move a task across a line).
The pages' rule (cronjobs.reporting.health.TaskHealth.status, docs/admin.md) follows each
task's own target and, like the alerts, calls a low success rate a warning however low it is;
for a task with a 90 % target the two agree except below 50 % with no failed last attempt,
open circuit or critical alert, and tests/test_sql_views.py checks that they agree elsewhere.
The statuses are spelled out in SQL; the same test keeps them equal to Execution.FINISHED and
Execution.FAILURES.
"""

from __future__ import annotations

from typing import Any

from cronjobs import legacy


def local(column: str) -> str:
    return f"FROM_UNIXTIME(TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {column}))"


FAILURES = "('failed', 'timed_out', 'memory_exceeded', 'abandoned')"
SEED_FINISHED = "e.attempt >= 1 AND e.status <> 'running'"

# Queries on this view filter on created_at, a computed local time no index can serve, so they
# read every row. Left to itself MariaDB reads them through the (task, started_at) or
# (status, started_at) index, one random row fetch at a time; a plain table scan is 3 to 6
# times faster on a million rows (2.2 s and 3.5 s for the seed's two queries on the benchmark).
METRICS = f"""
CREATE OR REPLACE VIEW flagged_products_cron_metrics AS
SELECT e.id AS id,
       t.name AS task_name,
       e.run_id AS run_id,
       e.attempt AS attempt,
       e.status AS status,
       CASE WHEN e.status = 'succeeded' THEN 1 ELSE 0 END AS success,
       e.duration AS execution_time,
       e.peak_rss_bytes AS memory_used,
       COALESCE(e.cpu_user, 0) + COALESCE(e.cpu_system, 0) AS cpu_time,
       e.exit_code AS exit_code,
       e.error AS error_message,
       e.`trigger` AS triggered_by,
       e.host AS host,
       {local("e.started_at")} AS started_at,
       {local("COALESCE(e.finished_at, e.started_at)")} AS created_at
FROM cronjobs_execution e IGNORE INDEX (execution_task_started, execution_status_started)
JOIN cronjobs_task t ON t.id = e.task_id
WHERE {SEED_FINISHED}
"""

PERFORMANCE = f"""
CREATE OR REPLACE VIEW vw_flagged_products_cron_performance AS
SELECT t.name AS task_name,
       COUNT(*) AS total_executions,
       SUM(e.status = 'succeeded') AS successful_executions,
       SUM(e.status IN {FAILURES}) AS failed_executions,
       ROUND(100 * SUM(e.status = 'succeeded') / COUNT(*), 2) AS success_rate,
       ROUND(AVG(e.duration), 3) AS avg_execution_time,
       ROUND(MIN(e.duration), 3) AS min_execution_time,
       ROUND(MAX(e.duration), 3) AS max_execution_time,
       ROUND(AVG(e.peak_rss_bytes)) AS avg_memory_used,
       MAX(e.peak_rss_bytes) AS max_memory_used,
       {local("MIN(e.started_at)")} AS first_execution,
       {local("MAX(e.started_at)")} AS last_execution
FROM cronjobs_execution e
JOIN cronjobs_task t ON t.id = e.task_id
WHERE {SEED_FINISHED} AND e.started_at >= UTC_TIMESTAMP() - INTERVAL 30 DAY
GROUP BY t.id, t.name
"""

DAILY_TRENDS = f"""
CREATE OR REPLACE VIEW vw_flagged_products_cron_daily_trends AS
SELECT t.name AS task_name,
       DATE({local("e.started_at")}) AS execution_date,
       COUNT(*) AS total_executions,
       SUM(e.status = 'succeeded') AS successful_executions,
       SUM(e.status IN {FAILURES}) AS failed_executions,
       ROUND(100 * SUM(e.status = 'succeeded') / COUNT(*), 2) AS success_rate,
       ROUND(AVG(e.duration), 3) AS avg_execution_time,
       ROUND(MAX(e.duration), 3) AS max_execution_time,
       ROUND(AVG(e.peak_rss_bytes)) AS avg_memory_used,
       MAX(e.peak_rss_bytes) AS max_memory_used
FROM cronjobs_execution e
JOIN cronjobs_task t ON t.id = e.task_id
WHERE {SEED_FINISHED}
GROUP BY t.id, t.name, execution_date
"""

# One row per task. The correlated subqueries read the (task, started_at) index backwards and
# stop at the first match, like cronjobs.reporting.stats.last_executions. Inside the view MariaDB
# otherwise prefers walking the global started_at index for ORDER BY ... LIMIT 1, which reads
# the whole table for a task that never ran (a minute on a million rows): hence the hint.
LAST = f"""(SELECT e.{{column}} FROM cronjobs_execution e FORCE INDEX (execution_task_started)
            WHERE e.task_id = t.id AND {SEED_FINISHED}{{extra}}
            ORDER BY e.started_at DESC LIMIT 1)"""

HEALTH = f"""
CREATE OR REPLACE VIEW vw_flagged_products_cron_health AS
SELECT h.*,
       CASE
         WHEN h.retired = 1 THEN 'retired'
         WHEN h.enabled = 0 THEN 'disabled'
         WHEN h.circuit_state <> 'closed' OR h.last_status IN {FAILURES} THEN 'critical'
         WHEN h.successes_24h * 2 < h.executions_24h THEN 'critical'
         WHEN h.open_alerts > 0 OR h.successes_24h * 10 < h.executions_24h * 9 THEN 'warning'
         WHEN h.last_status IS NULL THEN 'idle'
         ELSE 'healthy'
       END AS health_status
FROM (
  SELECT t.name AS task_name,
         t.enabled AS enabled,
         t.retired_at IS NOT NULL AS retired,
         t.priority AS priority,
         t.schedule AS schedule,
         COALESCE(c.state, 'closed') AS circuit_state,
         {LAST.format(column="status", extra="")} AS last_status,
         {local(LAST.format(column="started_at", extra=""))} AS last_execution,
         {local(LAST.format(column="finished_at", extra=" AND e.status = 'succeeded'"))}
           AS last_success,
         d.executions_24h AS executions_24h,
         d.successes_24h AS successes_24h,
         d.failures_24h AS failures_24h,
         ROUND(100 * d.successes_24h / NULLIF(d.executions_24h, 0), 2) AS success_rate_24h,
         (SELECT COUNT(*) FROM cronjobs_alert a
          WHERE a.task_id = t.id AND a.open_key IS NOT NULL) AS open_alerts
  FROM cronjobs_task t
  LEFT JOIN cronjobs_circuitstate c ON c.task_id = t.id
  LEFT JOIN (
    SELECT e.task_id,
           COUNT(*) AS executions_24h,
           SUM(e.status = 'succeeded') AS successes_24h,
           SUM(e.status IN {FAILURES}) AS failures_24h
    FROM cronjobs_execution e
    WHERE {SEED_FINISHED} AND e.started_at >= UTC_TIMESTAMP() - INTERVAL 24 HOUR
    GROUP BY e.task_id
  ) d ON d.task_id = t.id
) h
"""

SEED_VIEWS = {
    "flagged_products_cron_metrics": METRICS,
    "vw_flagged_products_cron_performance": PERFORMANCE,
    "vw_flagged_products_cron_daily_trends": DAILY_TRENDS,
    "vw_flagged_products_cron_health": HEALTH,
}


JOB_MEMORY = "COALESCE(e.memory_added_bytes, e.peak_rss_bytes)"
# The views' executions are finished attempts, as Execution.FINISHED: V2 had no stop, and a
# cancelled attempt (an operator's stop) says nothing of the job's health.
FINISHED = "e.attempt >= 1 AND e.status NOT IN ('running', 'cancelled')"

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
        .replace(SEED_FINISHED, FINISHED)
        for name, sql in SEED_VIEWS.items()
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
