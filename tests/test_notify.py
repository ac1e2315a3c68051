"""Receivers (supervisor/notify.py): Apprise URLs, the shorthands, the guard that keeps any
receiver from changing a run's result, secrets kept out of logs, `manage.py check` and
`manage.py testalert`."""

from __future__ import annotations

import logging

import pytest
from django.core import checks
from django.utils import timezone

from cronjobs.models import Alert
from cronjobs.supervisor import alerts, notify
from cronjobs.supervisor.registry import registry
from cronjobs.supervisor.runner import run_task
from cronjobs.supervisor.sync import sync_task
from tests.helpers import make_alert, make_task
from tests.loopback import endpoint

pytestmark = pytest.mark.django_db
TOKEN = "T0SECRET/B0SECRET/xoxSecretToken42"


@pytest.fixture
def json_receiver(settings):
    with endpoint() as server:
        settings.ALERT_URLS = [server.url(f"/{TOKEN}", scheme="json")]
        settings.ALERT_EMAILS, settings.ALERT_WEBHOOK_URL = [], ""
        settings.ALERT_TIMEOUT = 1
        yield server


def test_apprise_json_receiver_hears_task_kind_host_and_admin_link(json_receiver, settings):
    settings.CRONJOBS_BASE_URL = "https://cron.example.com"
    settings.CRONJOBS_HOST = "worker-7"
    alert = alerts.raise_alert(make_task("stock_sync"), "late", "no run since 09:00")
    [hit] = json_receiver.hits
    sent = hit.json()
    assert hit.path == f"/{TOKEN}"
    assert "OPEN: late alert for stock_sync" in sent["title"]
    assert "worker-7" in sent["message"]
    assert "no run since 09:00" in sent["message"]
    assert f"https://cron.example.com/admin/cronjobs/alert/{alert.pk}/change/" in sent["message"]


def test_failed_run_links_the_attempt_in_the_admin(json_receiver, settings, make_spec):
    settings.CRONJOBS_BASE_URL = "https://cron.example.com/"
    outcome = run_task(make_spec("raise_value_error", name="unlucky", max_attempts=1))
    execution = outcome.executions[-1]
    link = f"https://cron.example.com/admin/cronjobs/execution/{execution.pk}/change/"
    assert link in json_receiver.hits[0].json()["message"]


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_receiver_that_fails_or_hangs_never_changes_the_result(
    json_receiver, make_spec, mode, caplog
):
    json_receiver.mode = mode
    caplog.set_level(logging.DEBUG)
    assert run_task(make_spec("succeed", name="fine", max_attempts=1)).exit_code == 0
    make_alert(make_task("unlucky_x"))  # unrelated: must not matter
    outcome = run_task(make_spec("raise_value_error", name="unlucky", max_attempts=1))
    assert outcome.exit_code == 1  # the job's own status
    assert json_receiver.hits  # it was tried
    assert Alert.objects.get(task__name="unlucky", kind="failed").notified_at is not None
    assert f"alert to json://{json_receiver.address}/… failed" in caplog.text
    assert "SECRET" not in caplog.text


def test_every_receiver_is_tried_when_one_is_broken(settings, mailoutbox):
    with endpoint() as server:
        settings.ALERT_EMAILS = ["ops@example.com"]
        settings.ALERT_WEBHOOK_URL = f"hooks.example.com/services/{TOKEN}"  # no scheme
        settings.ALERT_URLS = ["nosuchservice://x/y", server.url("/hook", scheme="json")]
        results = notify.send_to_all(notify.Message("title", "body", {"text": "t"}))
        assert list(results.values()) == [True, False, False, True]
        assert len(mailoutbox) == 1 and len(server.hits) == 1


def test_redacted_url_keeps_scheme_and_host_only():
    assert notify.redact(f"https://hooks.slack.com/services/{TOKEN}") == "https://hooks.slack.com/…"
    assert notify.redact("json://user:pw@127.0.0.1:8080/x?token=1") == "json://127.0.0.1:8080/…"
    assert notify.redact(f"hooks.slack.com/services/{TOKEN}") == "<unparsable URL>"
    assert "Secret" not in notify.scrub(f"unknown url type: 'x/{TOKEN}'", f"x/{TOKEN}")


@pytest.mark.django_db(transaction=True)
def test_schemeless_webhook_url_leaves_a_succeeded_run_at_exit_0_and_token_unprinted(
    manage, log_dir
):
    task = sync_task(registry.get("test_succeed"))
    # The success will resolve it: a notified alert, so a recovery to send.
    make_alert(task, "failed", notified_at=timezone.now())
    url = f"hooks.slack.com/services/{TOKEN}"
    result = manage("runjob", "test_succeed", env_extra={"ALERT_WEBHOOK_URL": url})
    assert result.returncode == 0, result.stderr
    assert Alert.objects.get(task__name="test_succeed").state == "resolved"
    assert "Traceback" not in result.stderr
    assert "<unparsable URL>" in result.stderr  # the failure is logged, redacted
    written = "".join(p.read_text() for p in log_dir.rglob("*") if p.is_file())
    for text in (result.stdout, result.stderr, written):
        assert "SECRET" not in text and "xoxSecretToken42" not in text


def test_check_reports_unparsable_receiver_urls(settings):
    settings.ALERT_WEBHOOK_URL = f"hooks.slack.com/services/{TOKEN}"
    settings.ALERT_URLS = ["slack://T/B/C", "nosuchservice://host/path"]
    settings.CRONJOBS_WATCHDOG_PING_URL = "hc-ping.com/abc"
    errors = [m for m in checks.run_checks() if m.id == "cronjobs.E002"]
    text = "\n".join(m.msg for m in errors)
    assert len(errors) == 3, text
    assert "ALERT_WEBHOOK_URL: <unparsable URL> has no scheme" in text
    assert "ALERT_URLS: nosuchservice://host/… is not a URL Apprise recognises" in text
    assert "CRONJOBS_WATCHDOG_PING_URL" in text
    assert "SECRET" not in text


def test_check_accepts_good_receiver_urls(settings):
    settings.ALERT_WEBHOOK_URL = "https://hooks.slack.com/services/T/B/C"
    settings.ALERT_URLS = ["json://127.0.0.1:9/x", "mailto://user:pw@example.com"]
    assert not [m for m in checks.run_checks() if m.id == "cronjobs.E002"]


@pytest.mark.django_db(transaction=True)
def test_testalert_prints_which_receivers_succeeded(manage):
    with endpoint() as good, endpoint() as bad:
        bad.mode = "error"
        urls = f"{good.url('/ok', scheme='json')} {bad.url(f'/{TOKEN}', scheme='json')}"
        result = manage("testalert", env_extra={"ALERT_URLS": urls, "ALERT_TIMEOUT": "2"})
    assert result.returncode == 1
    assert f"ok     apprise json://{good.address}/…" in result.stdout
    assert f"FAILED apprise json://{bad.address}/…" in result.stdout
    assert "1 receiver(s) failed" in result.stderr
    assert "test alert" in good.hits[0].json()["title"]
    assert "SECRET" not in result.stdout + result.stderr


@pytest.mark.django_db(transaction=True)
def test_testalert_without_receivers_says_what_to_set(manage):
    result = manage(
        "testalert", env_extra={"ALERT_URLS": "", "ALERT_EMAILS": "", "ALERT_WEBHOOK_URL": ""}
    )
    assert result.returncode == 1
    assert "set ALERT_URLS, ALERT_EMAILS or ALERT_WEBHOOK_URL" in result.stderr
