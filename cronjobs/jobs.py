"""Built-in tasks, so a fresh install has something harmless to run."""

import platform

from cronjobs.registry import JobContext, cronjob


@cronjob(schedule="0 * * * *", timeout=60, max_attempts=1, priority=5,
         description="Proves the supervisor, the database and the logs work.")  # fmt: skip
def heartbeat(ctx: JobContext) -> None:
    print(f"heartbeat from {platform.node()} (run {ctx.run_id[:8]}, trigger {ctx.trigger})")
