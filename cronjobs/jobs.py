"""Built-in tasks, so a fresh install has something harmless to run."""

import platform

from cronjobs.supervisor.registry import JobContext, cronjob


@cronjob(
    schedule="0 * * * *",
    timeout=60,
    max_attempts=1,
    priority=5,
    description="Proves the supervisor, the database and the logs work.",
)
def heartbeat(ctx: JobContext) -> None:
    print(f"heartbeat from {platform.node()} (run {ctx.run_id[:8]}, trigger {ctx.trigger})")


@cronjob(
    schedule="*/5 * * * *",
    timeout=120,
    max_attempts=1,
    priority=1,
    description=(
        "Raises late alerts for missed schedules, abandons runs of dead supervisors, starts "
        "catch-up runs, ends snoozes that ran out, sends alert reminders and escalations, "
        "checks success rates, pings "
        "CRONJOBS_WATCHDOG_PING_URL."
    ),
)
def watchdog(ctx: JobContext) -> None:
    from cronjobs.supervisor.watchdog import sweep

    report = sweep()
    print(
        f"late: {', '.join(report['late']) or 'none'}; abandoned runs: {report['abandoned_runs']}"
    )
    if report["taken_over"]:
        print(f"started slots dead dispatchers left: {', '.join(report['taken_over'])}")


@cronjob(
    schedule="30 3 * * *",
    timeout=1800,
    max_attempts=1,
    priority=5,
    description=(
        "Deletes executions and resolved alerts older than 90 days, in batches; deletes log "
        "files beyond CRONJOBS_LOG_RETENTION_DAYS, gzips those older than a day."
    ),
)
def prune_history(ctx: JobContext) -> None:
    from cronjobs.supervisor.pruning import prune, prune_logs

    counts = prune(days=90)
    print(f"deleted {counts['executions']} execution(s), {counts['alerts']} alert(s)")
    files = prune_logs()
    print(
        f"log files: {len(files['deleted'])} deleted, {len(files['compressed'])} gzipped, "
        f"{len(files['rotated'])} rotated"
    )
