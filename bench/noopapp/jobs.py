"""The no-op job both runners execute in bench/runjob_overhead.py."""

from cronjobs.supervisor.registry import cronjob


@cronjob(name="bench_noop", timeout=60, max_attempts=1)
def noop() -> None:
    pass


@cronjob(name="bench_hold", timeout=300, max_attempts=1)
def hold() -> None:
    """Hold the lease until BENCH_EXPECTED_SKIPS overlap skips exist (at most 120 s)."""
    import os
    import time

    from cronjobs.models import Execution

    expected = int(os.environ.get("BENCH_EXPECTED_SKIPS", "0"))
    skips = Execution.objects.filter(task__name="bench_hold", skip_reason="overlap")
    deadline = time.monotonic() + 120
    while skips.count() < expected and time.monotonic() < deadline:
        time.sleep(0.2)


@cronjob(name="bench_sleep", timeout=3600, max_attempts=1)
def sleep() -> None:
    import os
    import time

    time.sleep(float(os.environ.get("BENCH_SLEEP", "0")))


# bench/ten_million.py runs four `runjob` loops side by side, each on a task of its own: on
# one task they would mostly skip each other as overlaps.
for _n in range(1, 5):
    cronjob(name=f"bench_noop_{_n}", timeout=60, max_attempts=1)(noop)


# bench/slots.py: the no-op as a scheduled task, so `runjob --trigger cron` finds and claims
# its slot.
cronjob(name="bench_slot", schedule="* * * * *", timeout=60, max_attempts=1)(noop)
