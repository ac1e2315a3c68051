#!/usr/bin/env python3
"""Server time of the control room's pages on a big history, and a 100,000-row CSV export.

    .venv/bin/python bench/admin.py [--repeat 5] [--export-rows 100000]
                                    [--url mysql://root:@127.0.0.1:3306/flagged_cron_bench]

Uses bench/seed_executions.py's database (1,000,000 executions over 20 tasks and 90 days;
seeded on first use). Each page is fetched through Django's test Client, in process, as a
logged-in superuser: the figure is the median wall time of `--repeat` requests after one
warm-up, so it is the server's work (queries, templates), not a network or browser.
The export streams a CSV of the newest rows through the admin's export view; its figures are
the wall time to the last byte, the growth of the process's resident memory (which also sees
mysqlclient's C buffers), and the peak of Python allocations (tracemalloc, in a second run).
Targets (issue 6): pages under 0.5 s; the export under 15 s and 300 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.seed_executions import BENCH_URL, seed, setup_django

PAGE_TARGET, EXPORT_SECONDS, EXPORT_BYTES = 0.5, 15.0, 300 * 2**20


def client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench_admin", defaults={"is_staff": True, "is_superuser": True}
    )
    c = Client()
    c.force_login(user)
    return c


def pages() -> dict[str, str]:
    from django.urls import reverse

    from cronjobs.models import Execution, Task

    history = reverse("admin:cronjobs_execution_changelist")
    task = Task.objects.get(name="bench_task_07")
    run_id = Execution.objects.order_by("-id").values_list("run_id", flat=True)[500]
    week = (dt.date.today() - dt.timedelta(days=7)).isoformat()
    return {
        "history, first page": history,
        "history, page 20": f"{history}?p=20",
        "search: task name": f"{history}?q=bench_task_07",
        "search: run id prefix": f"{history}?q={run_id[:12]}",
        "search: error text": f"{history}?q=memory_exceeded+in+bench",
        "search: text that matches nothing": f"{history}?q=no+such+text",
        "filter: status failed": f"{history}?status__exact=failed",
        "filter: task": f"{history}?task__id__exact={task.pk}",
        "filter: last 7 days + timed out": f"{history}?started_at__range__gte={week}"
        "&status__exact=timed_out",
        "date hierarchy: one day": f"{history}?started_at__year={dt.date.today().year}"
        f"&started_at__month={dt.date.today().month}&started_at__day={dt.date.today().day}",
        "task list": reverse("admin:cronjobs_task_changelist"),
        "dashboard": reverse("cronjobs-dashboard"),
    }


def time_page(c, url: str, repeat: int, cold: bool = False) -> float:
    """Median seconds; `cold` empties the cache first each time (the dashboard's rendered
    content lives there, so a cold dashboard queries and draws it again)."""
    from django.core.cache import cache

    response = c.get(url)  # warm-up: template loading, first connection
    assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(repeat):
        if cold:
            cache.clear()
        began = time.perf_counter()
        response = c.get(url)
        if hasattr(response, "render"):
            response.render()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def export_url(rows: int) -> tuple[str, int]:
    """An export filter (a start date) that selects about `rows` of the newest rows."""
    from django.urls import reverse
    from django.utils import timezone

    from cronjobs.models import Execution

    newest = Execution.objects.order_by("-started_at", "-id").values_list("started_at", flat=True)
    cutoff = timezone.localtime(newest[rows - 1]).date() + dt.timedelta(days=1)
    count = Execution.objects.filter(
        started_at__gte=timezone.make_aware(dt.datetime.combine(cutoff, dt.time.min))
    ).count()
    url = reverse("admin:cronjobs_execution_export") + f"?started_at__range__gte={cutoff}"
    return url, count


def time_export(c, url: str) -> tuple[float, int, int, int]:
    """Seconds and rows of one export, RSS growth during it, then the peak of Python
    allocations in a second, traced run (tracemalloc slows Python down several times, so the
    time comes from the untraced run)."""
    import psutil

    from cronjobs.admin.resources import ExecutionResource

    fields = {f"executionresource_{name}": "on" for name in ExecutionResource._meta.fields}

    def run() -> int:
        response = c.post(url, {"format": "0", **fields})
        return sum(piece.count(b"\n") for piece in response.streaming_content) - 1

    process = psutil.Process()
    rss_before = process.memory_info().rss
    began = time.perf_counter()
    rows = run()
    elapsed = time.perf_counter() - began
    rss = max(process.memory_info().rss - rss_before, 0)
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, rows, peak, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--export-rows", type=int, default=100_000)
    parser.add_argument("--url", default=BENCH_URL)
    parser.add_argument("--skip-export", action="store_true")
    args = parser.parse_args()
    setup_django(args.url)
    from cronjobs.models import Execution

    seed()
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG is off: the manifest
    c = client()
    print(f"{Execution.objects.count():,} executions; median of {args.repeat} requests")
    timings = [(name, url, False) for name, url in pages().items()]
    timings += [
        (f"{name} (cold cache)", url, True)
        for name, url in pages().items()
        if name in ("task list", "dashboard")
    ]
    for name, url, cold in timings:
        seconds = time_page(c, url, args.repeat, cold)
        verdict = "ok" if seconds < PAGE_TARGET else "OVER TARGET"
        print(f"  {name:<34} {seconds * 1000:8.1f} ms  {verdict}")
    if args.skip_export:
        return
    url, expected = export_url(args.export_rows)
    elapsed, lines, peak, rss = time_export(c, url)
    ok = elapsed < EXPORT_SECONDS and max(peak, rss) < EXPORT_BYTES
    print(
        f"  CSV export of {lines:,} rows (filter selects {expected:,}): {elapsed:.1f} s, "
        f"peak Python allocations {peak / 2**20:.1f} MiB, RSS growth {rss / 2**20:.1f} MiB  "
        f"{'ok' if ok else 'OVER TARGET'}"
    )


if __name__ == "__main__":
    main()
