"""The front page (/admin/ is the overview), the one health rule behind every page's health
word, the recent failures grouped per run, and the buttons of a task's page and of the
Running now panel, with who may press them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cronjobs.models import CircuitState, Execution, Task
from cronjobs.reporting import health
from cronjobs.views.dashboard import build_context
from tests.api_fixtures import client_for
from tests.helpers import (
    add_scheduled_tasks,
    ago,
    make_alert,
    make_execution,
    make_task,
    make_user,
    queries_of,
)

pytestmark = pytest.mark.django_db

INDEX = reverse("admin:index")


def act_url(action: str, task: Task) -> str:
    return reverse("admin:cronjobs_task_act", args=[action, task.name])


def session(*perms: str, staff: bool = True, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(make_user("person", *perms, staff=staff))
    return client


def overview_rows(page: str) -> list[tuple[str, str]]:
    """(task, health word) of each overview row, in the page's order."""
    table = page[page.index('id="fc-overview-table"') :]
    table = table[: table.index("</table>")]
    return re.findall(r'data-task="([^"]+)">.*?fc-badge fc-(\w+)">', table, re.S)


def status_of(task: Task) -> str:
    return health.task_health([task])[task.pk].status


# The health rule ---------------------------------------------------------------------------


def test_a_warning_alert_alone_makes_a_warning_never_critical():
    task = make_task("slowish")
    make_execution(task, "succeeded", ago(hours=1))
    make_alert(task, "slow", severity="warning")
    assert status_of(task) == "warning"


def test_a_low_success_rate_is_a_warning_like_its_alert_not_critical():
    """Issue 24: a task showed red 'critical' while its only alert was a yellow warning."""
    task = make_task("flaky", success_target=90)
    for n in range(10):  # 30 % in 24 h, the last attempt succeeded
        make_execution(task, "succeeded" if n < 3 else "failed", ago(hours=n + 1))
    make_alert(task, "success_rate", severity="warning")
    item = health.task_health([task])[task.pk]
    assert item.status == "warning"
    assert "30% success in 24 h, target 90%" in item.reasons


def test_critical_comes_from_an_open_circuit_a_failed_last_run_or_a_critical_alert():
    tripped = make_task("tripped")
    make_execution(tripped, "succeeded", ago(hours=1))
    CircuitState.objects.create(task=tripped, state="open")
    failed = make_task("failed_last")
    make_execution(failed, "timed_out", ago(hours=1))
    late = make_task("late_one")
    make_execution(late, "succeeded", ago(days=2))
    make_alert(late, "late", severity="critical")
    found = health.task_health([tripped, failed, late])
    assert {h.task.name: h.status for h in found.values()} == {
        "tripped": "critical",
        "failed_last": "critical",
        "late_one": "critical",
    }
    assert found[tripped.pk].reasons == "circuit open"
    assert found[failed.pk].reasons == "last run timed out"
    assert found[late.pk].reasons == "1 critical alert"


def test_healthy_idle_disabled_and_retired():
    ok = make_task("ok")
    make_execution(ok, "succeeded", ago(hours=1))
    idle = make_task("never_ran")
    off = make_task("off", enabled=False)
    make_execution(off, "failed", ago(hours=1))
    gone = make_task("gone", retired_at=timezone.now())
    found = health.task_health([ok, idle, off, gone])
    assert [found[t.pk].status for t in (ok, idle, off, gone)] == [
        "healthy",
        "idle",
        "disabled",
        "retired",
    ]
    assert found[ok.pk].reasons == ""


# Recent failures, per run --------------------------------------------------------------------


def test_recent_failures_are_grouped_per_run_and_marked_recovered():
    task = make_task("retried")
    make_execution(task, "failed", ago(hours=3), run_id="a" * 32, attempt=1, error="boom 1")
    make_execution(task, "failed", ago(hours=3) + timedelta(seconds=5), run_id="a" * 32, attempt=2)
    make_execution(
        task, "succeeded", ago(hours=3) + timedelta(seconds=9), run_id="a" * 32, attempt=3
    )
    other = make_task("still_broken")
    make_execution(other, "succeeded", ago(hours=5), run_id="c" * 32)
    make_execution(other, "failed", ago(hours=2), run_id="b" * 32, error="disk full")
    later = make_task("fixed_later")
    make_execution(later, "failed", ago(hours=4), run_id="d" * 32)
    make_execution(later, "succeeded", ago(hours=1), run_id="e" * 32)

    runs = health.recent_failed_runs(ago(days=7), limit=10)

    assert [(r.latest.task.name, r.failed_attempts, r.recovered) for r in runs] == [
        ("still_broken", 1, ""),
        ("retried", 2, "retry succeeded"),
        ("fixed_later", 1, "a later run succeeded"),
    ]


def test_dashboard_marks_a_recovered_run_and_lists_each_run_once(admin_client):
    task = make_task("retried")
    for attempt in (1, 2):
        make_execution(task, "failed", ago(minutes=30 - attempt), run_id="a" * 32, attempt=attempt)
    make_execution(task, "succeeded", ago(minutes=20), run_id="a" * 32, attempt=3)
    failures = build_context()["recent_failures"]
    assert len(failures) == 1 and failures[0].recovered == "retry succeeded"
    page = admin_client.get(reverse("cronjobs-dashboard")).content.decode()
    section = page[page.index('id="fc-failures"') :]
    assert "(2 attempts failed)" in section and "recovered" in section


# The overview ------------------------------------------------------------------------------


def test_root_redirects_to_the_overview(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == INDEX


def test_overview_lists_every_task_worst_first_with_its_state(admin_client):
    fine = make_task("fine", priority=1)
    make_execution(fine, "succeeded", ago(minutes=10), duration=2.5)
    broken = make_task("broken", priority=9)
    make_execution(broken, "failed", ago(minutes=5), error="boom")
    make_alert(broken, "failed", severity="critical")
    shaky = make_task("shaky")
    make_execution(shaky, "succeeded", ago(minutes=7))
    make_alert(shaky, "memory", severity="warning")
    make_task("parked", enabled=False)
    make_task("old", retired_at=timezone.now())

    page = admin_client.get(INDEX).content.decode()
    rows = overview_rows(page)
    mine = [row for row in rows if row[0] in {"fine", "broken", "shaky", "parked"}]

    assert mine == [
        ("broken", "critical"),
        ("shaky", "warning"),
        ("fine", "healthy"),
        ("parked", "disabled"),
    ]
    assert "old" not in dict(rows)  # retired tasks are not on the front page
    assert len(rows) == Task.objects.filter(retired_at__isnull=True).count()
    broken_row = page[page.index('data-task="broken"') :][:1500]
    assert "last run failed, 1 critical alert" in broken_row
    assert "1 open" in broken_row
    assert 'id="fc-running"' in page  # the Running now panel
    assert reverse("cronjobs-dashboard") in page  # the dashboard one click away


def test_overview_puts_cron_jobs_first_and_the_domain_below_it(admin_client):
    response = admin_client.get(INDEX)
    labels = [app["app_label"] for app in response.context["app_list"]]
    assert labels[:2] == ["cronjobs", "flagged_products"]
    models = [m["object_name"] for m in response.context["app_list"][0]["models"]]
    assert models == ["Task", "Execution", "Alert", "MaintenanceWindow", "ApiToken"]


def test_overview_dates_name_their_zone(admin_client):
    task = make_task("dated")
    make_execution(task, "succeeded", ago(minutes=3))
    page = admin_client.get(INDEX).content.decode()
    zone = timezone.localtime().strftime("%Z")
    assert re.search(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d {re.escape(zone)}", page)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("anonymous", "login"),
        ("non_staff", "login"),
        ("staff", "no overview"),
        ("viewer", "overview"),
        ("staff_writer", "overview"),
        ("read_only", "login"),  # a bearer token is the API's; the admin wants a session
        ("read_write", "login"),
    ],
)
def test_who_sees_the_overview(kind, expected):
    make_task("visible")
    response = client_for(kind).get(INDEX)
    if expected == "login":
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
        return
    page = response.content.decode()
    assert response.status_code == 200
    assert ('id="fc-overview-table"' in page) is (expected == "overview")
    # Stop buttons are offered only to those who may change tasks.
    assert ("data-stop-url" in page) is (kind == "staff_writer")


# The buttons -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("perms", "staff", "status"),
    [
        ((), False, 302),  # not staff: the login page
        (("view_task",), True, 403),  # staff without `change task`
        (("view_task", "change_task"), True, 302),  # done, back to the task's page
    ],
)
def test_reset_circuit_button_needs_the_change_permission(perms, staff, status):
    task = make_task("breaker")
    CircuitState.objects.create(task=task, state="open", failure_count=5)
    response = session(*perms, staff=staff).post(act_url("reset-circuit", task))
    assert response.status_code == status
    closed = CircuitState.objects.get(task=task).state == "closed"
    assert closed is (status == 302 and staff)
    if closed:
        assert response["Location"] == reverse("admin:cronjobs_task_change", args=[task.pk])
        assert LogEntry.objects.filter(change_message="Circuit reset").count() == 1
    else:
        assert not LogEntry.objects.exists()


def test_buttons_refuse_anonymous_callers_and_tokens():
    task = make_task("breaker")
    CircuitState.objects.create(task=task, state="open")
    response = Client().post(act_url("reset-circuit", task))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    # A bearer token is no credential here: without a session the admin's CSRF check refuses.
    for kind in ("anonymous", "read_only", "read_write"):
        assert client_for(kind).post(act_url("reset-circuit", task)).status_code == 403, kind
    assert CircuitState.objects.get(task=task).state == "open"


def test_buttons_need_a_post_with_a_csrf_token():
    task = make_task("breaker")
    CircuitState.objects.create(task=task, state="open")
    writer = session("view_task", "change_task", csrf=True)
    assert writer.get(act_url("reset-circuit", task)).status_code == 405
    assert writer.post(act_url("reset-circuit", task)).status_code == 403  # no token
    assert CircuitState.objects.get(task=task).state == "open"


def test_unknown_action_or_task_is_404():
    task = make_task("known")
    writer = session("view_task", "change_task")
    assert writer.post(act_url("explode", task)).status_code == 404
    assert writer.post(reverse("admin:cronjobs_task_act", args=["stop", "nope"])).status_code == 404


def test_stop_button_on_an_idle_task_says_so_and_returns_where_it_was_pressed():
    task = make_task("idle_one")
    writer = session("view_task", "change_task")
    response = writer.post(act_url("stop", task), {"next": INDEX}, follow=True)
    assert response.redirect_chain[-1][0] == INDEX
    assert "idle_one&#x27; is not running: nothing to stop." in response.content.decode()


def test_next_may_not_lead_off_the_site():
    task = make_task("idle_one")
    response = session("view_task", "change_task").post(
        act_url("stop", task), {"next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("admin:cronjobs_task_change", args=[task.pk])


def test_snooze_button_snoozes_with_a_specific_message_and_refuses_a_past_date():
    task = make_task("noisy")
    writer = session("view_task", "change_task")
    response = writer.post(act_url("snooze", task), {"snooze": "1h"}, follow=True)
    page = response.content.decode()
    assert "Snoozed noisy until" in page and "Noisy" not in page
    assert Task.objects.get(pk=task.pk).is_snoozed()

    other = make_task("other")
    past = (timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    response = writer.post(
        act_url("snooze", other), {"snooze": "custom", "until": past}, follow=True
    )
    assert "Not snoozed:" in response.content.decode() and "is not in the future" in (
        response.content.decode()
    )
    assert Task.objects.get(pk=other.pk).snoozed_until is None

    response = writer.post(act_url("unsnooze", task), follow=True)
    assert "Ended the snooze of noisy." in response.content.decode()


def test_task_page_shows_its_buttons_only_to_those_who_may_press_them():
    task = make_task("controlled")
    url = reverse("admin:cronjobs_task_change", args=[task.pk])
    page = session("view_task", "change_task").get(url).content.decode()
    for action in ("run", "stop", "reset-circuit", "snooze"):
        assert act_url(action, task) in page
    assert 'placeholder="YYYY-MM-DD HH:MM"' in page  # a format, never a date that looks filled
    assert page.count(">Schedule<") <= 1  # one row named Schedule; the words are "in words"
    viewer = Client()
    viewer.force_login(make_user("viewer", "view_task"))
    assert act_url("run", task) not in viewer.get(url).content.decode()


# Lists -------------------------------------------------------------------------------------


def test_task_list_sorts_by_last_duration_and_p95(admin_client):
    fast, slow, never = make_task("fast"), make_task("slow"), make_task("never")
    for n in range(3):
        make_execution(fast, "succeeded", ago(hours=n + 1), duration=1.0)
        make_execution(slow, "succeeded", ago(hours=n + 1), duration=30.0 + n)
    changelist = reverse("admin:cronjobs_task_changelist")
    names = {fast.pk: "fast", slow.pk: "slow", never.pk: "never"}

    def order(column: str) -> list[str]:
        response = admin_client.get(changelist, {"o": column})
        return [names[t.pk] for t in response.context["cl"].result_list if t.pk in names]

    columns = list(response_columns(admin_client, changelist))
    last, p95 = columns.index("last_duration"), columns.index("p95_24h")
    assert order(str(last)) == ["slow", "fast", "never"]  # slowest first, never-run last
    assert order(f"-{last}") == ["never", "fast", "slow"]
    assert order(str(p95)) == ["slow", "fast", "never"]


def response_columns(client: Client, url: str) -> list[str]:
    return list(client.get(url).context["cl"].list_display)


def test_execution_title_has_no_database_id(admin_client):
    task = make_task("titled")
    row = make_execution(task, "failed", run_id="9ad93a68" + "0" * 24, attempt=2)
    page = admin_client.get(reverse("admin:cronjobs_execution_change", args=[row.pk]))
    title = re.search(r"<title>(.*?)</title>", page.content.decode(), re.S).group(1)
    assert "titled, run 9ad93a68, attempt 2 (failed)" in title
    assert f"{task.pk} 9ad93a68" not in title


def test_history_list_shows_the_error_summary_and_the_run(admin_client):
    task = make_task("erring")
    make_execution(task, "failed", error="ValueError: no stock file for outlet 12")
    page = admin_client.get(reverse("admin:cronjobs_execution_changelist")).content.decode()
    assert "ValueError: no stock file for outlet 12" in page
    assert Execution.objects.get(task=task).run_id[:8] in page


def test_overview_queries_do_not_grow_with_the_number_of_tasks(admin_client):
    add_scheduled_tasks(5)
    few = queries_of(lambda: admin_client.get(INDEX))
    add_scheduled_tasks(55)
    assert queries_of(lambda: admin_client.get(INDEX)) == few


def test_overview_shows_the_worst_rows_and_says_how_many_more(admin_client, monkeypatch):
    monkeypatch.setattr("cronjobs.views.overview.OVERVIEW_ROWS", 3)
    add_scheduled_tasks(4)
    broken = make_task("broken_one")
    make_execution(broken, "failed", ago(hours=1))
    page = admin_client.get(INDEX).content.decode()
    rows = overview_rows(page)
    assert len(rows) == 3
    assert rows[0] == ("broken_one", "critical")
    more = Task.objects.filter(retired_at__isnull=True).count() - 3
    assert f"and {more} more, no worse than the last above" in page
