"""The task list and task page in the admin: health columns, the enabled toggle, actions,
permissions and the admin log."""

from __future__ import annotations

import time

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cronjobs.models import CircuitState, Execution, Task
from tests.helpers import (
    add_scheduled_tasks,
    ago,
    database_url,
    make_alert,
    make_execution,
    make_task,
    make_user,
    queries_of,
    wait_for,
)

pytestmark = pytest.mark.django_db

LIST = reverse("admin:cronjobs_task_changelist")


def change_url(task: Task) -> str:
    return reverse("admin:cronjobs_task_change", args=[task.pk])


def action(client, name: str, *tasks: Task, follow: bool = True):
    data = {"action": name, "_selected_action": [t.pk for t in tasks]}
    return client.post(LIST, data, follow=follow)


def test_list_shows_schedule_in_words_next_run_last_status_and_success_rates(admin_client):
    task = make_task("nightly_report", schedule="5 7 * * *")
    make_execution(task, "succeeded", ago(hours=2))
    make_execution(task, "failed", ago(hours=1), error="boom")
    make_execution(task, "succeeded", ago(days=3))
    CircuitState.objects.create(task=task, state="open")

    page = admin_client.get(LIST).content.decode()

    assert "nightly_report" in page
    assert "At 07:05 AM" in page
    assert 'fc-badge fc-failed">failed' in page  # the last attempt
    assert "50% of 2" in page  # 24 hours
    assert "67% of 3" in page  # 30 days
    assert 'fc-badge fc-open">open' in page


def test_list_query_count_does_not_grow_with_history(admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(LIST).status_code == 200
        return len(ctx)

    tasks = [make_task() for _ in range(3)]
    for task in tasks:
        make_execution(task, "succeeded")
    before = queries()
    for task in tasks:
        for days, status in enumerate(("succeeded", "failed", "timed_out", "skipped")):
            make_execution(task, status, ago(days=days, minutes=5))
        make_alert(task, "failed", message="x")
    assert queries() == before


def test_list_reads_the_duration_histograms_once_for_its_p95_column(admin_client):
    """The p95 comes from the hour rollups, one read for every task of the page: never a query
    per task, never the history's rows."""
    for name in ("p1", "p2", "p3"):
        task = make_task(name)
        make_execution(task, "succeeded", ago(hours=3), duration=2.0)
        make_execution(task, "succeeded", ago(minutes=5), duration=3.0)
    with CaptureQueriesContext(connection) as ctx:
        assert admin_client.get(LIST).status_code == 200
    assert len([q["sql"] for q in ctx.captured_queries if "histogram" in q["sql"]]) == 1


def test_list_sorted_by_p95_puts_the_slowest_first_and_shows_the_same_p95(admin_client):
    """The CASE that sorts by p95 is built only when asked for; the column reads the row's
    health either way, so sorted or not a task shows one p95."""
    mine = {"quick": 1.0, "slow": 9.0, "middling": 4.0}
    for name, duration in mine.items():
        make_execution(make_task(name), "succeeded", ago(minutes=5), duration=duration)
    unsorted = admin_client.get(LIST).context["cl"]
    column = unsorted.list_display.index("p95_24h")
    by_p95 = admin_client.get(LIST, {"o": str(column)}).context["cl"]
    reverse = admin_client.get(LIST, {"o": f"-{column}"}).context["cl"]

    def ours(changelist):  # the declared tasks have no p95 and sort after or before these
        return [task for task in changelist.result_list if task.name in mine]

    assert [task.name for task in ours(by_p95)] == ["slow", "middling", "quick"]
    assert [task.name for task in ours(reverse)] == ["quick", "middling", "slow"]
    assert admin_client.get(LIST, {"o": "99.-98"}).status_code == 200  # a stale link
    shown = {task.name: task.health.day.p95_duration for task in ours(unsorted)}
    assert {task.name: task.health.day.p95_duration for task in ours(by_p95)} == shown
    assert shown["slow"] > shown["middling"] > shown["quick"]


def test_enabled_toggle_in_the_list_saves_and_is_logged_with_the_user(admin_client, admin_user):
    task = make_task("toggled")
    page = admin_client.get(LIST)
    formset = page.context["cl"].formset
    data = {
        f"{formset.prefix}-{key}": value
        for key, value in {
            "TOTAL_FORMS": formset.total_form_count(),
            "INITIAL_FORMS": formset.initial_form_count(),
        }.items()
    }
    for i, form in enumerate(formset.forms):
        data[f"{formset.prefix}-{i}-id"] = form.instance.pk
        if form.instance.pk != task.pk and form.instance.enabled:
            data[f"{formset.prefix}-{i}-enabled"] = "on"
    data["_save"] = "Save"

    response = admin_client.post(LIST, data, follow=True)

    assert response.status_code == 200
    task.refresh_from_db()
    assert task.enabled is False
    entry = LogEntry.objects.get(object_id=str(task.pk))
    assert entry.user == admin_user and entry.get_change_message() == "Disabled"


def test_toggling_several_tasks_in_one_list_save_counts_as_one_write(admin_client, settings):
    settings.CRONJOBS_WRITE_RATE = 1
    tasks = [make_task(name) for name in ("one", "two", "three")]
    formset = admin_client.get(LIST).context["cl"].formset
    data = {
        f"{formset.prefix}-TOTAL_FORMS": formset.total_form_count(),
        f"{formset.prefix}-INITIAL_FORMS": formset.initial_form_count(),
        "_save": "Save",
    }
    for i, form in enumerate(formset.forms):
        data[f"{formset.prefix}-{i}-id"] = form.instance.pk  # no "enabled": every row off

    assert admin_client.post(LIST, data, follow=True).status_code == 200

    assert not Task.objects.filter(pk__in=[t.pk for t in tasks], enabled=True).exists()


def test_enable_and_disable_actions_change_the_tasks_and_log_each(admin_client, admin_user):
    one, two = make_task("one"), make_task("two", enabled=False)

    response = action(admin_client, "disable", one, two)
    assert "Disabled one." in response.content.decode()  # two was disabled already
    assert not Task.objects.get(pk=one.pk).enabled

    response = action(admin_client, "enable", one, two)
    assert "Enabled one and two." in response.content.decode()
    assert Task.objects.filter(pk__in=[one.pk, two.pk], enabled=True).count() == 2
    assert LogEntry.objects.filter(user=admin_user, object_id=str(one.pk)).count() == 2


def test_reset_circuit_action_closes_the_breaker_and_resolves_its_alert(admin_client):
    task = make_task("breaker")
    CircuitState.objects.create(task=task, state="open", failure_count=5)
    alert = make_alert(task, "circuit_open", message="open")

    response = action(admin_client, "reset_circuit", task)

    assert "Closed the circuit of breaker." in response.content.decode()
    assert CircuitState.objects.get(task=task).state == "closed"
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert LogEntry.objects.filter(object_id=str(task.pk), change_message="Circuit reset").exists()


def test_run_now_refuses_a_disabled_task_with_a_message(admin_client):
    task = make_task("sleeping", enabled=False)
    response = action(admin_client, "run_now", task)
    assert "Not started: task &#x27;sleeping&#x27; is disabled" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_run_now_starts_the_task_in_the_background_and_links_to_the_run(
    admin_client, monkeypatch, log_dir
):
    # The background runjob is a new process: point it at this test database.
    monkeypatch.setenv("DATABASE_URL", database_url())
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    monkeypatch.setenv("LOG_DIR", str(log_dir))
    task = Task.objects.get(name="heartbeat")

    started = time.monotonic()
    response = action(admin_client, "run_now", task)
    assert time.monotonic() - started < 5  # returns at once, the run goes on
    message = str(next(iter(response.context["messages"])))
    assert "Started heartbeat in the background" in message
    run_id = message.split("?run_id=")[1].split('"')[0]

    finished = Execution.objects.filter(run_id=run_id).exclude(status="running")
    row = wait_for(finished.first, timeout=60, interval=0.2, what=f"run {run_id} to finish")
    assert row.status == "succeeded" and row.trigger == "admin"
    assert LogEntry.objects.filter(change_message=f"Run now (run {run_id})").exists()
    runs = admin_client.get(reverse("admin:cronjobs_execution_changelist"), {"run_id": run_id})
    assert run_id[:8] in runs.content.decode()


def test_task_page_shows_settings_read_only_recent_executions_and_open_alerts(admin_client):
    task = make_task("detail", memory_limit=512 * 1024**2)
    make_execution(task, "timed_out", error="timed out after 60 s")
    make_alert(task, "slow", message="took 59 s")

    response = admin_client.get(change_url(task))
    page = response.content.decode()

    assert "512.0 MiB" in page
    assert "timed out after 60 s" in page and "took 59 s" in page
    form = response.context["adminform"].form
    assert list(form.fields) == ["enabled"]  # everything else comes from code


def test_tasks_cannot_be_added_or_deleted_from_the_admin(admin_client):
    task = make_task()
    assert admin_client.get(reverse("admin:cronjobs_task_add")).status_code == 403
    assert (
        admin_client.get(reverse("admin:cronjobs_task_delete", args=[task.pk])).status_code == 403
    )


def test_a_viewer_sees_the_list_but_cannot_toggle_run_or_reset(client):
    task = make_task("guarded")
    client.force_login(make_user("viewer", "view_task"))

    page = client.get(LIST)
    assert page.status_code == 200 and "guarded" in page.content.decode()
    assert page.context["cl"].formset is None  # no enabled checkboxes
    assert page.context["action_form"] is None  # no actions offered
    for name in ("disable", "run_now", "reset_circuit"):
        action(client, name, task)
        task.refresh_from_db()
        assert task.enabled is True
    assert client.post(change_url(task), {"enabled": ""}).status_code == 403
    assert not LogEntry.objects.exists()


def test_state_changes_need_a_post_with_a_csrf_token(admin_user):
    from django.test import Client

    task = make_task("csrf_guarded")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    client.get(LIST, {"action": "disable", "_selected_action": task.pk})
    response = action(client, "disable", task, follow=False)

    assert response.status_code == 403  # no CSRF token
    task.refresh_from_db()
    assert task.enabled is True


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get(LIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_list_query_count_does_not_grow_with_the_number_of_tasks(admin_client):
    add_scheduled_tasks(5)
    few = queries_of(lambda: admin_client.get(LIST))
    add_scheduled_tasks(55)
    assert queries_of(lambda: admin_client.get(LIST)) == few
