"""Jobs that misbehave on purpose, for the runner's tests. They read FC_TEST_DIR (a per-test
directory) to leave evidence: pid files, attempt counters, markers."""

import os
import subprocess
import sys
import time
from pathlib import Path

from cronjobs.supervisor.registry import cronjob


def _dir() -> Path:
    return Path(os.environ["FC_TEST_DIR"])


def succeed(ctx):
    print(f"hello from {ctx.task} attempt {ctx.attempt}")
    ctx.logger.warning("a logged warning")


def exit_three():
    print("about to exit 3", file=sys.stderr)
    sys.exit(3)


def raise_value_error(ctx):
    raise ValueError("the numbers do not add up")


def sleep_forever():
    time.sleep(3600)


def grandchild_ignoring_term():
    """Start a grandchild that ignores SIGTERM and record its pid, then sleep."""
    child = subprocess.Popen(
        ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"], start_new_session=False
    )
    (_dir() / "grandchild.pid").write_text(str(child.pid))
    (_dir() / "worker.pid").write_text(str(os.getpid()))
    time.sleep(3600)


def hog_memory():
    blocks = []
    while True:
        blocks.append(bytearray(16 * 1024 * 1024))  # touched pages count as resident
        time.sleep(0.005)


def flaky(ctx):
    """Fails on every attempt but the last."""
    with open(_dir() / "attempts.log", "a") as fh:
        fh.write(f"{ctx.attempt} {time.monotonic()}\n")
    if ctx.attempt < ctx.max_attempts:
        raise RuntimeError(f"attempt {ctx.attempt} failed")


def chatter(ctx):
    for i in range(20000):
        print(f"line {i:05d} " + "x" * 40)


def touch_marker(ctx):
    (_dir() / f"marker-{ctx.trigger}").write_text(ctx.run_id)


# A registered task for the subprocess tests of `manage.py runjob`.
cronjob(name="test_succeed", timeout=30, max_attempts=1)(succeed)
cronjob(name="test_sleep", timeout=600, max_attempts=1)(sleep_forever)
cronjob(name="test_grandchild", timeout=600, max_attempts=1)(grandchild_ignoring_term)
cronjob(name="test_exit_three", timeout=30, max_attempts=1, retry_delay=0)(exit_three)


def hold_until_overlaps(ctx):
    """Hold the lease until FC_EXPECTED_SKIPS overlap skips are recorded (at most 120 s), so
    every concurrent invocation meets a held lease."""
    from cronjobs.models import Execution

    expected = int(os.environ.get("FC_EXPECTED_SKIPS", "19"))
    deadline = time.monotonic() + 120
    skips = Execution.objects.filter(task__name=ctx.task, skip_reason="overlap")
    while skips.count() < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    print(f"saw {skips.count()} overlap skips")


cronjob(name="test_hold", timeout=300, max_attempts=1)(hold_until_overlaps)


def allocate_64_mib():
    block = b"x" * (64 * 1024 * 1024)  # written, so every page is resident
    time.sleep(0.3)
    del block
