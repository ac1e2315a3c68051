"""GET /metrics: Prometheus text format, read from the database on every scrape."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from cronjobs.models import CircuitState, Task
from tests.api_fixtures import client_for
from tests.helpers import add_scheduled_tasks, make_alert, make_execution, make_task, queries_of

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def scrape(client=None) -> dict[str, dict[tuple, float]]:
    """Metric name -> {sorted label items: value}, parsed by prometheus-client's own parser."""
    with time_machine.travel(NOW, tick=False):
        response = (client or client_for("read_only")).get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    parsed: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            parsed.setdefault(sample.name, {})[labels] = sample.value
    return parsed


def value(metrics, name: str, **labels) -> float | None:
    return metrics.get(name, {}).get(tuple(sorted(labels.items())))


@pytest.fixture(autouse=True)
def only_our_tasks(db):
    Task.objects.all().delete()


@pytest.mark.django_db
def test_last_run_and_last_success_per_task():
    task = make_task("nightly")
    make_execution(task, "succeeded", NOW - dt.timedelta(hours=3), duration=12.5)
    make_execution(task, "failed", NOW - dt.timedelta(hours=1), duration=4.0)
    metrics = scrape()
    last_start = (NOW - dt.timedelta(hours=1)).timestamp()
    success_end = (NOW - dt.timedelta(hours=3) + dt.timedelta(seconds=1)).timestamp()
    assert value(metrics, "flagged_cron_last_run_timestamp_seconds", task="nightly") == last_start
    assert value(metrics, "flagged_cron_last_run_success", task="nightly") == 0
    assert value(metrics, "flagged_cron_last_run_duration_seconds", task="nightly") == 4.0
    assert value(metrics, "flagged_cron_last_success_timestamp_seconds", task="nightly") == (
        success_end
    )


@pytest.mark.django_db
def test_outcome_counts_over_the_last_day():
    task = make_task("nightly")
    for hours in (1, 2, 3):
        make_execution(task, "succeeded", NOW - dt.timedelta(hours=hours), duration=float(hours))
    make_execution(task, "timed_out", NOW - dt.timedelta(hours=4), duration=60.0)
    make_execution(task, "skipped", NOW - dt.timedelta(hours=5), skip_reason="overlap")
    make_execution(task, "failed", NOW - dt.timedelta(hours=30))  # yesterday's news
    metrics = scrape()
    statuses = ("succeeded", "failed", "timed_out", "skipped", "memory_exceeded")
    counts = [
        value(metrics, "flagged_cron_attempts_24h", task="nightly", status=s) for s in statuses
    ]
    assert counts == [3, 0, 1, 1, 0]
    assert value(metrics, "flagged_cron_success_percent_24h", task="nightly") == 75.0
    p95 = value(metrics, "flagged_cron_duration_p95_seconds_24h", task="nightly")
    assert p95 == pytest.approx(60.0, rel=0.04)  # from the duration histogram
    # the counter is all-time: yesterday's failure is in it
    assert value(metrics, "flagged_cron_attempts_total", task="nightly", status="failed") == 1
    assert value(metrics, "flagged_cron_attempts_total", task="nightly", status="succeeded") == 3


@pytest.mark.django_db
def test_circuit_state_enabled_running_and_alerts():
    tripped, off = make_task("tripped"), make_task("off", enabled=False)
    CircuitState.objects.create(task=tripped, state="open", opened_at=NOW)
    make_execution(off, "running", NOW - dt.timedelta(minutes=1))
    make_alert(tripped, "circuit_open", severity="critical", message="x")
    make_alert(off, "slow", state="resolved", message="x")
    metrics = scrape()
    state = {
        s: value(metrics, "flagged_cron_circuit_state", task="tripped", state=s)
        for s in ("closed", "open", "half_open")
    }
    assert state == {"closed": 0, "open": 1, "half_open": 0}
    assert value(metrics, "flagged_cron_circuit_state", task="off", state="closed") == 1
    assert value(metrics, "flagged_cron_task_enabled", task="off") == 0
    assert value(metrics, "flagged_cron_running", task="off") == 1
    assert value(metrics, "flagged_cron_running", task="tripped") == 0
    assert metrics["flagged_cron_open_alerts"] == {
        (("kind", "circuit_open"), ("severity", "critical"), ("task", "tripped")): 1
    }


@pytest.mark.django_db
def test_each_scrape_reads_the_database_afresh():
    task = make_task("nightly")
    client = client_for("read_only")
    assert value(scrape(client), "flagged_cron_last_run_success", task="nightly") is None
    make_execution(task, "succeeded", NOW - dt.timedelta(minutes=5))
    assert value(scrape(client), "flagged_cron_last_run_success", task="nightly") == 1


@pytest.mark.django_db
def test_retired_tasks_without_recent_history_are_left_out():
    make_task("gone", retired_at=NOW - dt.timedelta(days=10))
    metrics = scrape()
    assert value(metrics, "flagged_cron_task_enabled", task="gone") is None
    assert value(metrics, "flagged_cron_attempts_24h", task="gone", status="failed") is None


@pytest.mark.django_db
def test_unknown_parameter_is_400():
    response = client_for("read_only").get("/metrics?format=json")
    assert response.status_code == 400
    assert response.json() == {"error": "unknown parameter 'format' (allowed: none)"}


def test_scrape_queries_do_not_grow_with_the_number_of_tasks():
    client = client_for("read_only")
    add_scheduled_tasks(5)
    client.get("/metrics")  # the token's first use is noted once
    few = queries_of(lambda: client.get("/metrics"))
    add_scheduled_tasks(55)
    assert queries_of(lambda: client.get("/metrics")) == few


@pytest.mark.django_db
def test_scrape_is_the_text_prometheus_client_writes():
    """/metrics writes its own lines (cronjobs.views.metrics.Family); read back and written
    again by prometheus_client's generate_latest they come out byte for byte the same, escaped
    label values, counters, histogram and exponent-written timestamps included."""
    odd = make_task('quote"back\\slash')
    make_task("plain")
    CircuitState.objects.create(task=odd, state="half_open", opened_at=NOW)
    make_execution(
        odd, "succeeded", NOW - dt.timedelta(hours=2), duration=1234567.25, start_lag=0.75
    )
    make_execution(odd, "failed", NOW - dt.timedelta(hours=1), duration=0.1)
    make_alert(odd, "failed", severity="critical", message="x")
    with time_machine.travel(NOW, tick=False):
        text = client_for("read_only").get("/metrics").content

    class Replay(Collector):
        def collect(self):
            yield from text_string_to_metric_families(text.decode())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Replay())
    assert b'task="quote\\"back\\\\slash"' in text
    assert b"flagged_cron_start_lag_seconds_24h_bucket" in text
    assert text == generate_latest(registry)
