"""Healthchecks-protocol pings (supervisor/pings.py) against a loopback ping endpoint: the exact
sequence and bodies for success, failure, timeout and skip, the template, the watchdog's ping,
and that no ping ever changes a result."""

from __future__ import annotations

import logging
import uuid

import pytest
from django.db import DatabaseError

from cronjobs.models import Execution
from cronjobs.supervisor import lease, pings, watchdog
from cronjobs.supervisor.registry import ConfigError
from cronjobs.supervisor.runner import run_task
from tests.helpers import make_task
from tests.loopback import endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def hc(settings):
    """A Healthchecks stand-in; pings in tests wait at most 1 s per try."""
    settings.CRONJOBS_PING_TIMEOUT = 1
    with endpoint() as server:
        yield server


def test_success_sends_start_then_success_with_the_run_id(hc, make_spec):
    spec = make_spec("succeed", name="nightly", max_attempts=1, ping_url=hc.url("/ping/k1"))
    outcome = run_task(spec)
    assert outcome.exit_code == 0
    assert hc.paths == ["/ping/k1/start", "/ping/k1"]
    rid = str(uuid.UUID(outcome.run_id))
    assert [hit.query["rid"] for hit in hc.hits] == [rid, rid]
    assert [hit.body for hit in hc.hits] == [b"", b""]


def test_failure_sends_start_then_fail_with_the_output_tail(hc, make_spec):
    spec = make_spec("raise_value_error", name="broken", max_attempts=2, ping_url=hc.url("/p/k2"))
    outcome = run_task(spec)
    assert outcome.exit_code == 1
    assert hc.paths == ["/p/k2/start", "/p/k2/fail"]  # one start per run, not per attempt
    assert b"ValueError: the numbers do not add up" in hc.hits[1].body
    assert hc.hits[1].body.decode() == outcome.executions[-1].output


def test_fail_body_is_capped_at_100_kb(hc):
    pinger = pings.Pinger(hc.url("/p/k3"), uuid.uuid4().hex)
    pinger.fail("early " + "x" * 300_000 + " the end")
    body = hc.hits[0].body
    assert len(body) == 100 * 1024
    assert body.endswith(b" the end")


def test_skipped_run_sends_nothing(hc, make_spec):
    make_task("resting", enabled=False)
    spec = make_spec("succeed", name="resting", ping_url=hc.url("/p/k4"))
    assert run_task(spec).status == Execution.Status.SKIPPED
    assert hc.hits == []


def test_template_gives_every_task_a_ping_url(hc, make_spec, settings):
    settings.CRONJOBS_PING_URL_TEMPLATE = hc.url("/ping/project-key/{task}")
    run_task(make_spec("succeed", name="stock_sync", max_attempts=1))
    assert hc.paths == ["/ping/project-key/stock_sync/start", "/ping/project-key/stock_sync"]


def test_template_query_string_is_kept(hc, make_spec, settings):
    settings.CRONJOBS_PING_URL_TEMPLATE = hc.url("/ping/key/{task}?create=1")
    run_task(make_spec("succeed", name="auto", max_attempts=1))
    assert hc.paths == ["/ping/key/auto/start", "/ping/key/auto"]
    assert all(hit.query["create"] == "1" and hit.query["rid"] for hit in hc.hits)


def test_ping_that_answers_500_is_retried_twice_and_the_run_still_succeeds(hc, make_spec, caplog):
    hc.mode = "error"
    outcome = run_task(make_spec("succeed", name="n5", max_attempts=1, ping_url=hc.url("/p/k5")))
    assert outcome.exit_code == 0
    assert hc.paths == ["/p/k5/start"] * 3 + ["/p/k5"] * 3
    assert f"ping start to http://{hc.address}/… failed" in caplog.text


def test_ping_endpoint_that_never_answers_leaves_the_result_alone(hc, make_spec, caplog):
    hc.mode = "hang"
    caplog.set_level(logging.ERROR)
    outcome = run_task(make_spec("succeed", name="n6", max_attempts=1, ping_url=hc.url("/p/k6")))
    assert outcome.exit_code == 0
    assert Execution.objects.get(run_id=outcome.run_id).status == "succeeded"
    # Each try times out after 1 s; the run's 3 s budget runs out before the end ping's tries.
    assert hc.paths.count("/p/k6/start") in (2, 3)
    assert hc.paths.count("/p/k6") <= 1
    assert "ping success to" in caplog.text


def test_unusable_ping_url_never_changes_the_result(make_spec, settings, caplog):
    settings.CRONJOBS_PING_URL_TEMPLATE = "hc-ping.com/secret-key-123/{task}"  # no scheme
    outcome = run_task(make_spec("succeed", name="n7", max_attempts=1))
    assert outcome.exit_code == 0
    assert "ping start to <unparsable URL> failed" in caplog.text
    assert "secret-key-123" not in caplog.text


def test_watchdog_pings_its_url_on_every_sweep(hc, settings):
    settings.CRONJOBS_WATCHDOG_PING_URL = hc.url("/ping/watchdog")
    watchdog.sweep()
    watchdog.sweep()
    assert hc.paths == ["/ping/watchdog", "/ping/watchdog"]
    assert hc.hits[0].query["rid"] != hc.hits[1].query["rid"]


def test_watchdog_that_cannot_reach_the_database_pings_fail(hc, settings, monkeypatch):
    settings.CRONJOBS_WATCHDOG_PING_URL = hc.url("/ping/watchdog")

    def database_gone() -> int:
        raise DatabaseError("(2003) Can't connect to MySQL server")

    monkeypatch.setattr(lease, "reap_expired", database_gone)
    with pytest.raises(DatabaseError):
        watchdog.sweep()
    assert hc.paths == ["/ping/watchdog/fail"]
    assert b"Can't connect to MySQL server" in hc.hits[0].body


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("hc-ping.com/abc", "must start with http:// or https://"),
        ("ftp://hc-ping.com/abc", "must start with http:// or https://"),
        (42, r"is not an http\(s\) Healthchecks ping URL"),
    ],
)
def test_bad_ping_url_is_a_declaration_error(make_spec, value, problem):
    with pytest.raises(ConfigError, match=problem):
        make_spec("succeed", name="bad_ping", ping_url=value)
