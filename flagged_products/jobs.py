"""The five Flagged Products jobs (docs/domain.md), with the old system's schedules,
timeouts, priorities and success targets (> 99 %, insights > 95 %). Each is idempotent:
retries and overlapping hosts may run it again. Each takes its business day from the slot it
runs for (`ctx.scheduled_for`), so a late or caught-up run works on the day it was scheduled
for, not the day it happened to start; a run started by hand works on today.

The work lives in the module named after each job; these wrappers time it and print one summary
line, which lands in the attempt's output and the daily log (bench/flagged_jobs.py reads the time
and memory from there; its bench/querycount app adds the SQL query count)."""

from __future__ import annotations

import datetime
import resource
import time
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from cronjobs.supervisor.registry import JobContext, cronjob
from flagged_products import achievements, insights, leaderboard, selection, stats

MEMORY_LIMIT = "512M"
SUCCESS_TARGET = 99  # percent of runs; the seed's table says "> 99 %" for four of the jobs
INSIGHTS_SUCCESS_TARGET = 95  # an external API: the seed's table says "> 95 %"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def business_day(ctx: JobContext) -> datetime.date:
    """The slot's date on the task's wall clock; today for a run with no slot."""
    return ctx.scheduled_for.date() if ctx.scheduled_for else timezone.localdate()


def run_and_report(ctx: JobContext, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run the job's work and print what it did, its time, and the memory it added to the
    process (a forked worker starts with the supervisor's pages, so the peak alone mostly
    measures Python and Django)."""
    started, rss_before = time.monotonic(), peak_rss_mib()
    result = work()
    figures = " ".join(f"{key}={value}" for key, value in result.items())
    elapsed, peak = time.monotonic() - started, peak_rss_mib()
    print(
        f"{ctx.task}: {figures} seconds={elapsed:.3f} "
        f"peak_rss_mib={peak:.1f} added_mib={peak - rss_before:.1f}"
    )
    return result


@cronjob(
    schedule="5 7 * * *",
    timeout=600,
    priority=1,
    memory_limit=MEMORY_LIMIT,
    success_target=SUCCESS_TARGET,
    duration_alerts="auto",
    catch_up=True,  # missed at 07:05 (host down): a late list beats no list
    description="Flag the products each outlet's staff count today.",
)
def generate_daily_products(ctx: JobContext) -> None:
    run_and_report(ctx, lambda: selection.generate_daily_products(business_day(ctx)))


@cronjob(
    schedule="*/30 * * * *",
    timeout=180,
    priority=2,
    memory_limit=MEMORY_LIMIT,
    success_target=SUCCESS_TARGET,
    duration_alerts="auto",
    description="Cache per-outlet counting statistics.",
)
def refresh_store_stats(ctx: JobContext) -> None:
    run_and_report(ctx, lambda: stats.refresh_store_stats(ctx.scheduled_for))


@cronjob(
    schedule="0 2 * * *",
    timeout=300,
    priority=3,
    memory_limit=MEMORY_LIMIT,
    success_target=SUCCESS_TARGET,
    duration_alerts="auto",
    description="Rank staff by counting points as of yesterday: day, week, month, all time.",
)
def refresh_leaderboard(ctx: JobContext) -> None:
    day = leaderboard.as_of_date(business_day(ctx))
    run_and_report(ctx, lambda: leaderboard.refresh_leaderboard(day))


@cronjob(
    schedule="0 */6 * * *",
    timeout=300,
    priority=3,
    memory_limit=MEMORY_LIMIT,
    success_target=SUCCESS_TARGET,
    duration_alerts="auto",
    after=["refresh_leaderboard"],  # badges read the board: award them on a fresh one
    description="Award counting badges, judged on closed days (after refresh_leaderboard).",
)
def check_achievements(ctx: JobContext) -> None:
    day = leaderboard.as_of_date(business_day(ctx))
    run_and_report(ctx, lambda: achievements.check_achievements(day))


@cronjob(
    schedule="0 * * * *",
    timeout=600,
    priority=4,
    memory_limit=MEMORY_LIMIT,
    success_target=INSIGHTS_SUCCESS_TARGET,
    duration_alerts="auto",
    description="Write per-outlet insights (OpenAI-compatible API, or rules).",
)
def generate_ai_insights(ctx: JobContext) -> None:
    run_and_report(ctx, lambda: insights.generate_ai_insights(business_day(ctx)))
