#!/usr/bin/env python3
"""The overview, `/admin/` (issue 24), on a million executions: warm and cold, side by side
with the page it replaced (Django's stock app list) and with the pages around it.

    .venv/bin/python bench/overview.py [--repeat 7] [--cold 3]
                                       [--url mysql://root:@127.0.0.1:3306/flagged_cron_bench_overview]

The MariaDB database gets bench/seed_executions.py's history (1,000,000 executions of 20
tasks over 90 days; seeded on first use, kept) and its rollups (cronjobs.history.rebuild,
once), plus an open circuit and a few open alerts so the page has something to say. Each page
is fetched through Django's test client as a logged-in superuser:

- warm: the median of `--repeat` requests after one warm-up, in one process;
- cold: the first request of a fresh Python process (no database connection yet, templates
  not compiled, cron-descriptor's translations not loaded: a worker just restarted), the
  median of `--cold` such processes. The process's start-up (Django's setup) is not counted.

Targets (issue 24): the overview under 0.3 s warm and 1 s cold.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.seed_executions import setup_django

URL = "mysql://root:@127.0.0.1:3306/flagged_cron_bench_overview"
WARM_TARGET, COLD_TARGET = 0.3, 1.0


def pages() -> dict[str, str]:
    from django.urls import reverse

    return {
        "overview (/admin/)": reverse("admin:index"),
        "stock app list (before)": reverse("admin:index") + "?stock=1",
        "task list": reverse("admin:cronjobs_task_changelist"),
        "task list, by p95": reverse("admin:cronjobs_task_changelist") + "?o=6",
        "Running now poll (/api/running/)": reverse("api-running"),
    }


def client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench_admin", defaults={"is_staff": True, "is_superuser": True}
    )
    c = Client()
    c.force_login(user)
    return c


def stock_index_when_asked() -> None:
    """`?stock=1` serves Django's own index (the app list, no overview): the page /admin/ was."""
    from django.contrib import admin

    from cronjobs.views.overview import ControlRoomSite

    overview_index = ControlRoomSite.index

    def index(self, request, extra_context=None):
        if request.GET.get("stock"):
            return admin.AdminSite.index(self, request, extra_context)
        return overview_index(self, request, extra_context)

    ControlRoomSite.index = index  # type: ignore[method-assign]


def fetch(c, url: str) -> float:
    began = time.perf_counter()
    response = c.get(url)
    if hasattr(response, "render"):
        response.render()
    elapsed = time.perf_counter() - began
    assert response.status_code == 200, (url, response.status_code)
    return elapsed


def warm(c, url: str, repeat: int) -> float:
    fetch(c, url)
    return statistics.median(fetch(c, url) for _ in range(repeat))


def prepare() -> None:
    """Seed once: history, rollups, one open circuit and a few open alerts."""
    from bench.seed_executions import seed
    from cronjobs import history
    from cronjobs.models import Alert, CircuitState, Rollup, Task

    seed()
    if not Rollup.objects.exists():
        began = time.monotonic()
        history.rebuild()
        print(f"rollups rebuilt in {time.monotonic() - began:.1f} s")
    tasks = list(Task.objects.filter(source="bench").order_by("name"))
    CircuitState.objects.update_or_create(task=tasks[3], defaults={"state": "open"})
    for task, kind, severity in ((tasks[3], "failed", "critical"), (tasks[5], "slow", "warning")):
        Alert.objects.get_or_create(
            task=task,
            kind=kind,
            open_key=f"{task.pk}:{kind}",
            defaults={"severity": severity, "message": f"bench {kind}"},
        )


def cold_child(url: str, db_url: str) -> None:
    """In a fresh process: time the first request only."""
    setup_django(db_url)
    stock_index_when_asked()
    c = client()
    print(json.dumps({"seconds": fetch(c, url)}))


def cold(url: str, db_url: str, times: int) -> float:
    results = []
    for _ in range(times):
        out = subprocess.run(
            [sys.executable, __file__, "--cold-child", url, "--url", db_url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1])["seconds"])
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--url", default=URL)
    parser.add_argument("--cold-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_child:
        cold_child(args.cold_child, args.url)
        return
    setup_django(args.url)
    stock_index_when_asked()
    from django.core.management import call_command

    from cronjobs.models import Execution, Task

    prepare()
    call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG is off: the manifest
    c = client()
    tasks = Task.objects.filter(retired_at__isnull=True).count()
    print(
        f"{Execution.objects.count():,} executions, {tasks} current tasks; warm: median of "
        f"{args.repeat} requests; cold: median of {args.cold} fresh processes' first request"
    )
    print(f"  {'page':<36} {'warm':>9} {'cold':>9}")
    for name, url in pages().items():
        hot = warm(c, url, args.repeat)
        first = cold(url, args.url, args.cold)
        verdict = ""
        if name.startswith("overview"):
            ok = hot < WARM_TARGET and first < COLD_TARGET
            verdict = "ok" if ok else "OVER TARGET"
        print(f"  {name:<36} {hot * 1000:6.1f} ms {first * 1000:6.1f} ms  {verdict}")


if __name__ == "__main__":
    main()
