#!/usr/bin/env python3
"""Server time of the API and /metrics on a million executions (issue 7's targets: under
0.2 s each at 24 hours, under 1 s at 720 hours).

    .venv/bin/python bench/api.py [--repeat 7] [--url mysql://...flagged_cron_bench]

Seeds the benchmark database first when needed (bench/seed_executions.py), then calls each URL
in-process through Django's test Client with a read-only bearer token, once to warm up and
`--repeat` times measured, and prints the median, minimum and maximum wall time per URL along
with the number of SQL queries. Nothing is timed against a network or a browser.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.seed_executions import BENCH_URL, seed, setup_django

URLS = [
    "/api/metrics/?hours=24",
    "/api/metrics/?hours=720",
    "/api/status/",
    "/api/tasks/",
    "/metrics",
]
TARGETS = {"/api/metrics/?hours=720": 1.0}
DEFAULT_TARGET = 0.2


def measure(client, url: str, repeat: int) -> tuple[list[float], int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        client.get(url)
        times.append(time.perf_counter() - began)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return times, len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--url", default=BENCH_URL)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    setup_django(args.url)
    rows = seed(args.rows)

    from django.test import Client

    from cronjobs import tokens
    from cronjobs.models import ApiToken

    ApiToken.objects.filter(name="bench").delete()
    _, secret = tokens.create_token("bench", read_only=True, from_command_line=True)
    client = Client(headers={"authorization": f"Bearer {secret}"})
    print(f"{rows:,} executions; median of {args.repeat} after one warm-up call")
    print(f"{'url':<28} {'median':>8} {'min':>8} {'max':>8} {'queries':>8}  target")
    for url in URLS:
        times, queries = measure(client, url, args.repeat)
        median, target = statistics.median(times), TARGETS.get(url, DEFAULT_TARGET)
        verdict = "ok" if median < target else "MISSED"
        print(
            f"{url:<28} {median:8.3f} {min(times):8.3f} {max(times):8.3f} {queries:8d}  "
            f"<{target} s {verdict}"
        )


if __name__ == "__main__":
    main()
