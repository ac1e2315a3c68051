"""Snooze and maintenance (cronjobs/actions.py snooze/unsnooze, supervisor/alerts.py): alerts are
recorded but not notified while a task is snoozed, `late` is not raised, and an alert still open
when the snooze ends is notified once. Through the API, the admin and `manage.py snooze`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.admin.models import LogEntry
from django.test import Client

from cronjobs import actions
from cronjobs.admin.tasks import snooze_end
from cronjobs.models import Alert, Task
from cronjobs.supervisor import alerts, watchdog
from cronjobs.supervisor.runner import run_task
from tests.api_fixtures import CALLERS, client_for
from tests.helpers import make_task, make_user
from tests.test_api_auth import expected_status

pytestmark = pytest.mark.django_db
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# Who may snooze: the same rule as every API write (tests/test_api_auth.py).
WRITE_EXPECTED = {caller: expected_status(caller, "change_task") for caller in CALLERS}


@pytest.fixture
def emails(settings):
    from django.core import mail

    settings.ALERT_EMAILS = ["ops@example.com"]
    settings.ALERT_URLS, settings.ALERT_WEBHOOK_URL = [], ""
    return mail.outbox


def _snooze(task: Task, until: datetime) -> None:
    Task.objects.filter(pk=task.pk).update(snoozed_until=until)


def test_snoozed_task_records_alerts_but_notifies_nobody(emails):
    task = make_task("stock_sync")
    with time_machine.travel(START, tick=False):
        _snooze(task, START + timedelta(hours=1))
        alert = alerts.raise_alert(task, "failed", "broke during the deploy")
        alerts.raise_alert(task, "failed", "broke again")
    alert.refresh_from_db()
    assert alert.occurrences == 2 and alert.notified_at is None
    assert emails == []


def test_alert_still_open_when_the_snooze_ends_is_notified_once(emails):
    task = make_task("stock_sync")
    healed = make_task("healed")
    with time_machine.travel(START, tick=False) as clock:
        _snooze(task, START + timedelta(hours=1))
        _snooze(healed, START + timedelta(hours=1))
        alerts.raise_alert(task, "failed", "still broken")
        alerts.raise_alert(healed, "failed", "broken for a moment")
        alerts.resolve_kinds(healed, ["failed"], "a run succeeded")  # quietly: snoozed
        clock.move_to(START + timedelta(minutes=59))
        watchdog.sweep()
        assert emails == []
        clock.move_to(START + timedelta(hours=1, minutes=1))
        watchdog.sweep()
        watchdog.sweep()  # a second sweep (or host) sends nothing more
    assert [m.subject for m in emails] == [
        "[flagged-cron] STILL OPEN after snooze: failed alert for stock_sync"
    ]
    assert Task.objects.get(pk=task.pk).snoozed_until is None


def test_snooze_all_during_a_deploy_raises_no_late(emails):
    daily = make_task("daily_products", schedule="5 7 * * *", timeout=60, max_attempts=1)
    Task.objects.filter(pk=daily.pk).update(created_at=START - timedelta(days=2))
    client = client_for("read_write")
    with time_machine.travel(START, tick=False) as clock:
        assert client.post("/api/snooze/?minutes=120").status_code == 200
        report = watchdog.check_late()
        assert "daily_products" not in report["late"]
        assert not Alert.objects.filter(kind="late").exists()
        clock.move_to(START + timedelta(hours=2, minutes=1))
        assert watchdog.sweep()["late"] == ["daily_products"]
    assert [m.subject for m in emails] == ["[flagged-cron] OPEN: late alert for daily_products"]


def test_run_that_fails_while_snoozed_is_recorded_quietly(make_spec, emails):
    task = make_task("unlucky")
    _snooze(task, datetime.now(UTC) + timedelta(hours=1))
    outcome = run_task(make_spec("raise_value_error", name="unlucky", max_attempts=1))
    assert outcome.exit_code == 1
    assert Alert.objects.get(task=task, kind="failed").notified_at is None
    assert emails == []


def test_clearing_a_snooze_notifies_open_alerts_once(emails):
    task = make_task("stock_sync")
    _snooze(task, datetime.now(UTC) + timedelta(hours=1))
    alerts.raise_alert(task, "failed", "still broken")
    client = client_for("read_write")
    response = client.delete("/api/tasks/stock_sync/snooze/")
    assert response.json() == {"snoozed_until": None, "cleared": ["stock_sync"]}
    assert len(emails) == 1 and "STILL OPEN after snooze" in emails[0].subject
    assert client.delete("/api/tasks/stock_sync/snooze/").json()["cleared"] == []
    assert len(emails) == 1


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("url", ["/api/tasks/nightly/snooze/", "/api/snooze/"])
def test_snooze_api_access(caller, url):
    task = make_task("nightly")
    client = client_for(caller)
    secret = "x" * 32
    client.cookies["csrftoken"] = secret
    response = client.post(url + "?minutes=30", headers={"x-csrftoken": secret})
    assert response.status_code == WRITE_EXPECTED[caller], response.content
    snoozed = Task.objects.get(pk=task.pk).is_snoozed()
    assert snoozed is (response.status_code == 200)
    if response.status_code != 200:
        assert "error" in response.json()
    _snooze(task, datetime.now(UTC) + timedelta(hours=1))
    response = client.delete(url, headers={"x-csrftoken": secret})
    assert response.status_code == WRITE_EXPECTED[caller]
    assert Task.objects.get(pk=task.pk).is_snoozed() is (response.status_code != 200)


def test_snooze_api_takes_until_as_iso_in_a_json_body():
    make_task("nightly")
    until = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    response = client_for("read_write").post(
        "/api/tasks/nightly/snooze/", json.dumps({"until": until.isoformat()}), "application/json"
    )
    assert response.status_code == 200
    assert response.json() == {"snoozed_until": until.isoformat(), "tasks": ["nightly"]}
    assert Task.objects.get(name="nightly").snoozed_until == until
    entry = LogEntry.objects.get(object_id=str(Task.objects.get(name="nightly").pk))
    assert "Snoozed until" in entry.change_message and "token 'deploy'" in entry.change_message


@pytest.mark.parametrize(
    ("query", "body", "problem"),
    [
        ("", None, "give exactly one of until (ISO 8601) or minutes"),
        ("?minutes=5&until=2030-01-01T00:00", None, "give exactly one of"),
        ("?minutes=abc", None, "minutes must be a whole number from 1 to 43200"),
        ("?minutes=0", None, "minutes must be from 1 to 43200, not 0"),
        ("?minutes=99999", None, "minutes must be from 1 to 43200, not 99999"),
        ("?until=tomorrow", None, "until: 'tomorrow' is not an ISO 8601 date and time"),
        ("?until=2020-01-01T00:00", None, "is not in the future"),
        ("?until=2099-01-01T00:00", None, "is more than 30 days ahead"),
        ("?hours=2", None, "unknown parameter 'hours' (allowed: until, minutes)"),
        ("", "{not json", "the body is not valid JSON"),
        ("", "[1, 2]", "the JSON body must be an object"),
        ("?minutes=" + "9" * 5000, None, "minutes must be from 1 to 43200, not a 5000-digit"),
        ("", '{"minutes": ' + "9" * 5000 + "}", "the body is not valid JSON"),
        ("", '{"until": ' + "[" * 100_000 + "]" * 100_000 + "}", "bytes; at most 16384"),
        ("", '{"minutes": ' + "[" * 2000 + "]" * 2000 + "}", "one object of plain values"),
        ("", '{"minutes": {"a": 1}}', "one object of plain values, not nested"),
        ("", '{"minutes": "[{\\"", "x": "}"}', "unknown parameter 'x'"),
    ],
)
def test_bad_snooze_input_is_a_400_naming_the_problem(query, body, problem):
    task = make_task("nightly")
    client = client_for("read_write")
    url = "/api/tasks/nightly/snooze/" + query
    response = client.post(url, body, "application/json") if body else client.post(url)
    assert response.status_code == 400
    assert problem in response.json()["error"]
    assert not Task.objects.get(pk=task.pk).is_snoozed()


def test_snooze_of_an_unknown_task_is_404_and_wrong_method_is_405():
    client = client_for("read_write")
    assert client.post("/api/tasks/nope/snooze/?minutes=5").status_code == 404
    response = client.get("/api/snooze/")
    assert response.status_code == 405 and response["Allow"] == "POST, DELETE"


def test_admin_snooze_action_for_four_hours_and_unsnooze(client: Client):
    task = make_task("nightly")
    client.force_login(make_user("operator", "change_task", "view_task"))
    url = "/admin/cronjobs/task/"
    with time_machine.travel(START, tick=False):
        response = client.post(
            url, {"action": "snooze", "_selected_action": [task.pk], "snooze": "4h"}, follow=True
        )
        assert "Snoozed nightly until" in response.content.decode()
        assert Task.objects.get(pk=task.pk).snoozed_until == START + timedelta(hours=4)
        listing = client.get(url).content.decode()
        assert "snoozed until 2026-11-02 13:00" in listing
        client.post(url, {"action": "unsnooze", "_selected_action": [task.pk]})
    assert Task.objects.get(pk=task.pk).snoozed_until is None


def test_admin_snooze_custom_without_a_time_says_so(client: Client):
    task = make_task("nightly")
    client.force_login(make_user("operator", "change_task", "view_task"))
    data = {"action": "snooze", "_selected_action": [task.pk], "snooze": "custom", "until": ""}
    response = client.post("/admin/cronjobs/task/", data, follow=True)
    assert "Not snoozed: give the date and time to snooze until" in response.content.decode()
    assert Task.objects.get(pk=task.pk).snoozed_until is None


def test_admin_snooze_needs_the_change_permission(client: Client):
    task = make_task("nightly")
    client.force_login(make_user("viewer", "view_task"))
    data = {"action": "snooze", "_selected_action": [task.pk], "snooze": "1h"}
    client.post("/admin/cronjobs/task/", data)
    assert Task.objects.get(pk=task.pk).snoozed_until is None


def test_until_tomorrow_0800_is_local_time(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    from django.utils import timezone

    now = datetime(2026, 11, 2, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    with timezone.override("Europe/Berlin"):
        end = snooze_end("tomorrow", "", now)
    assert end == datetime(2026, 11, 3, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("length", "until", "end"),
    [
        ("90s", "", START + timedelta(seconds=90)),
        ("30m", "", START + timedelta(minutes=30)),
        ("4H", "", START + timedelta(hours=4)),
        ("2d", "", START + timedelta(days=2)),
        ("", "2026-11-02T12:30+00:00", START + timedelta(hours=3, minutes=30)),
    ],
)
def test_every_door_reads_a_snooze_end_with_the_one_parser(length, until, end):
    assert actions.snooze_end(length, until, now=START) == end


@pytest.mark.parametrize(
    ("length", "until", "problem"),
    [
        ("", "", "give either how long to snooze or until when"),
        ("1h", "2026-11-02T12:30", "give either how long to snooze or until when"),
        ("soon", "", "'soon' is not a duration like 30m, 4h or 2d, or tomorrow"),
        ("", "tomorrow", "'tomorrow' is not an ISO 8601 date and time"),
    ],
)
def test_a_snooze_end_that_cannot_be_read_says_why(length, until, problem):
    with pytest.raises(ValueError, match=problem):
        actions.snooze_end(length, until, now=START)


@pytest.mark.django_db(transaction=True)
def test_snooze_command_for_until_all_and_clear(manage):
    make_task("nightly")
    make_task("weekly")
    result = manage("snooze", "nightly", "--for", "30m")
    assert result.returncode == 0, result.stderr
    assert "snoozed until" in result.stdout and "nightly" in result.stdout
    assert Task.objects.get(name="nightly").is_snoozed()
    assert not Task.objects.get(name="weekly").is_snoozed()
    result = manage(
        "snooze", "--all", "--until", (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    )
    assert result.returncode == 0, result.stderr
    assert all(task.is_snoozed() for task in Task.objects.all())
    result = manage("snooze", "--all", "--clear")
    assert "snooze cleared:" in result.stdout
    assert "nightly" in result.stdout and "weekly" in result.stdout
    assert not any(task.is_snoozed() for task in Task.objects.all())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["nightly", "--for", "soon"], "'soon' is not a duration like 30m, 4h or 2d"),
        (["nightly", "--until", "2020-01-01T00:00"], "is not in the future"),
        (["nope", "--for", "1h"], "unknown task 'nope'"),
        (["nightly", "--all", "--clear"], "name one task or give --all (not both)"),
    ],
)
def test_snooze_command_bad_input_exits_2_naming_the_problem(manage, args, problem):
    make_task("nightly")
    result = manage("snooze", *args)
    assert result.returncode == 2
    assert problem in result.stderr
    assert not Task.objects.get(name="nightly").is_snoozed()


def test_snooze_shows_in_the_api_and_the_dashboard(admin_client):
    task = make_task("nightly")
    until = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    _snooze(task, until)
    payload = client_for("read_write").get("/api/tasks/nightly/").json()
    assert datetime.fromisoformat(payload["snoozed_until"]) == until
    assert payload["alert_after"] == 1 and payload["success_target"] == 99.0
    assert "snoozed until" in admin_client.get("/admin/dashboard/").content.decode()
