"""bench/querycount: the app bench/flagged_jobs.py installs to count each job's SQL statements,
so the product's jobs carry no benchmark code."""

from __future__ import annotations

import re

import pytest

from cronjobs.models import Execution


@pytest.mark.django_db(transaction=True)
def test_installed_through_extra_apps_it_adds_the_jobs_query_count(manage):
    counted = manage("runjob", "refresh_store_stats", env_extra={"EXTRA_APPS": "bench.querycount"})
    assert counted.returncode == 0, counted.stderr
    plain = manage("runjob", "refresh_store_stats", env_extra={"EXTRA_APPS": ""})
    assert plain.returncode == 0, plain.stderr

    first, second = Execution.objects.filter(task__name="refresh_store_stats").order_by("id")
    assert first.output.startswith("refresh_store_stats: outlets=0 seconds=")
    queries = re.search(r"^refresh_store_stats: queries=(\d+)$", first.output, re.MULTILINE)
    assert queries and int(queries.group(1)) > 0
    assert "queries=" not in second.output
