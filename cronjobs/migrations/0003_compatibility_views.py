"""The seed's monitoring views (docs/api.md, "SQL views"), so an operator's existing SQL keeps working
on MySQL/MariaDB: flagged_products_cron_metrics, vw_flagged_products_cron_performance,
vw_flagged_products_cron_daily_trends and vw_flagged_products_cron_health. docs/api.md ("SQL views")
documents the columns.

Times: Django stores UTC. The seed's queries compare with NOW() and CURDATE(), which are in the
session's time zone, so the views show times in the session's zone too. A view may not read
@@session.time_zone, and CONVERT_TZ needs the time zone tables for named zones, so each UTC
value goes through the epoch instead: FROM_UNIXTIME(TIMESTAMPDIFF(SECOND, epoch, utc)) renders
it in whatever zone the session uses (SYSTEM, an offset or a name), DST included, on a fresh
server without time zone tables. Filters on the raw UTC columns (UTC_TIMESTAMP()) keep the
30-day and 24-hour windows on the started_at indexes.

SQLite gets no views: the seed's SQL (NOW(), DATE_SUB, CURDATE) is MySQL's dialect and would
not run there anyway; cronjobs.reporting.stats gives the same figures on any database.

The health rule repeats cronjobs.reporting.health.TaskHealth.status (24-hour success rates below 0.5
and 0.9, compared in whole numbers so rounding cannot move a task across a line);
tests/test_sql_views.py checks that the two agree.
"""

from django.db import migrations


def local(column: str) -> str:
    return f"FROM_UNIXTIME(TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {column}))"


FAILURES = "('failed', 'timed_out', 'memory_exceeded', 'abandoned')"
FINISHED = "e.attempt >= 1 AND e.status <> 'running'"

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
       {local('e.started_at')} AS started_at,
       {local('COALESCE(e.finished_at, e.started_at)')} AS created_at
FROM cronjobs_execution e IGNORE INDEX (execution_task_started, execution_status_started)
JOIN cronjobs_task t ON t.id = e.task_id
WHERE {FINISHED}
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
       {local('MIN(e.started_at)')} AS first_execution,
       {local('MAX(e.started_at)')} AS last_execution
FROM cronjobs_execution e
JOIN cronjobs_task t ON t.id = e.task_id
WHERE {FINISHED} AND e.started_at >= UTC_TIMESTAMP() - INTERVAL 30 DAY
GROUP BY t.id, t.name
"""

DAILY_TRENDS = f"""
CREATE OR REPLACE VIEW vw_flagged_products_cron_daily_trends AS
SELECT t.name AS task_name,
       DATE({local('e.started_at')}) AS execution_date,
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
WHERE {FINISHED}
GROUP BY t.id, t.name, execution_date
"""

# One row per task. The correlated subqueries read the (task, started_at) index backwards and
# stop at the first match, like cronjobs.reporting.stats.last_executions. Inside the view MariaDB
# otherwise prefers walking the global started_at index for ORDER BY ... LIMIT 1, which reads
# the whole table for a task that never ran (a minute on a million rows): hence the hint.
LAST = f"""(SELECT e.{{column}} FROM cronjobs_execution e FORCE INDEX (execution_task_started)
            WHERE e.task_id = t.id AND {FINISHED}{{extra}}
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
    WHERE {FINISHED} AND e.started_at >= UTC_TIMESTAMP() - INTERVAL 24 HOUR
    GROUP BY e.task_id
  ) d ON d.task_id = t.id
) h
"""

VIEWS = {
    "flagged_products_cron_metrics": METRICS,
    "vw_flagged_products_cron_performance": PERFORMANCE,
    "vw_flagged_products_cron_daily_trends": DAILY_TRENDS,
    "vw_flagged_products_cron_health": HEALTH,
}


def create_views(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    for sql in VIEWS.values():
        schema_editor.execute(sql)


def drop_views(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    for name in VIEWS:
        schema_editor.execute(f"DROP VIEW IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("cronjobs", "0002_apitoken"),
    ]

    # MySQL commits DDL implicitly; RunPython must not wrap it in a transaction.
    operations = [migrations.RunPython(create_views, drop_views, atomic=False, elidable=False)]
