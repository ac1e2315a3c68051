"""The execution history in the admin: read-only list, filters, date hierarchy, the uncounted
paginator, the detail page, and the CSV export (the search box: tests/test_history_search.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cronjobs.admin import export as export_module
from cronjobs.models import Execution
from tests.helpers import ago, make_execution, make_task, make_user

pytestmark = pytest.mark.django_db

LIST = reverse("admin:cronjobs_execution_changelist")
EXPORT = reverse("admin:cronjobs_execution_export")
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def shown(response) -> set[int]:
    return {row.pk for row in response.context["cl"].result_list}


@pytest.fixture
def history():
    """Two tasks with a few attempts each, at known times."""
    with time_machine.travel(NOW, tick=False):
        stock, stats = make_task("stock_sync"), make_task("store_stats")
        rows = {
            "ok": make_execution(stock, "succeeded", ago(hours=1), host="app1"),
            "failed": make_execution(
                stock,
                "failed",
                ago(hours=2),
                host="app2",
                error="OperationalError: deadlock found",
                trigger="cron",
            ),
            "timeout": make_execution(
                stats,
                "timed_out",
                ago(days=3),
                host="app1",
                run_id="ab12cd34" + "0" * 24,
                trigger="admin",
            ),
            "old": make_execution(stats, "succeeded", ago(days=40), host="app1"),
        }
    with time_machine.travel(NOW, tick=False):
        yield rows


def test_list_shows_newest_first_with_task_status_and_memory(admin_client, history):
    Execution.objects.filter(pk=history["ok"].pk).update(peak_rss_bytes=48 * 1024**2)
    response = admin_client.get(LIST)
    page = response.content.decode()
    rows = list(response.context["cl"].result_list)
    assert rows[0].pk == history["ok"].pk and rows[-1].pk == history["old"].pk
    assert "stock_sync" in page and "48.0 MiB" in page
    assert 'fc-badge fc-timed_out">timed out' in page


def test_filters_by_status_task_trigger_and_date_range(admin_client, history):
    assert shown(admin_client.get(LIST, {"status__exact": "failed"})) == {history["failed"].pk}
    stats_id = history["timeout"].task_id
    assert shown(admin_client.get(LIST, {"task__id__exact": stats_id})) == {
        history["timeout"].pk,
        history["old"].pk,
    }
    assert shown(admin_client.get(LIST, {"trigger__exact": "admin"})) == {history["timeout"].pk}
    since = timezone.localdate() - dt.timedelta(days=7)
    in_week = admin_client.get(LIST, {"started_at__range__gte": since.isoformat()})
    assert shown(in_week) == {history["ok"].pk, history["failed"].pk, history["timeout"].pk}


def test_run_id_link_lists_every_attempt_of_the_run(admin_client):
    task = make_task()
    first = make_execution(task, "failed", run_id="r" * 32, attempt=1)
    second = make_execution(task, "succeeded", run_id="r" * 32, attempt=2)
    make_execution(task, "succeeded")
    assert shown(admin_client.get(LIST, {"run_id": "r" * 32})) == {first.pk, second.pk}


def test_date_hierarchy_offers_the_months_between_first_and_last_row(admin_client, history):
    response = admin_client.get(LIST)
    page = response.content.decode()
    assert "started_at__month=10" in page and "started_at__month=11" in page
    month = admin_client.get(LIST, {"started_at__year": 2026, "started_at__month": 11})
    assert shown(month) == {history["ok"].pk, history["failed"].pk, history["timeout"].pk}
    assert "started_at__day=17" in month.content.decode()  # the timeout's day


def test_pages_link_older_and_newer_without_counting_the_table(admin_client):
    task = make_task()
    Execution.objects.bulk_create(
        Execution(task=task, run_id=f"bulk{i}", started_at=NOW - dt.timedelta(minutes=i))
        for i in range(120)
    )
    with CaptureQueriesContext(connection) as queries:
        first = admin_client.get(LIST)
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    # The list never reads the output tail or the traceback it does not show.
    assert not any("output" in q["sql"] for q in queries.captured_queries)
    assert len(first.context["cl"].result_list) == 50
    assert "older &rsaquo;" in first.content.decode() and "Show all" not in first.content.decode()

    last = admin_client.get(LIST, {"p": 3})
    assert len(last.context["cl"].result_list) == 20
    page = last.content.decode()
    assert "&lsaquo; newer" in page and "older &rsaquo;" not in page


def test_list_query_count_does_not_grow_with_rows(admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(LIST).status_code == 200
        return len(ctx)

    task = make_task()
    make_execution(task)
    before = queries()
    for i in range(30):
        make_execution(make_task() if i % 10 == 0 else task, "failed")
    assert queries() == before


def test_list_reads_the_tasks_of_its_page_without_a_join(admin_client, history):
    """Joined, a filter on several tasks lets MySQL read every execution of those tasks and
    sort them all before it takes a page."""
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(LIST, {"q": "st"}).content.decode()  # both task names
    history_queries = [
        q["sql"] for q in queries.captured_queries if "cronjobs_execution" in q["sql"]
    ]
    assert history_queries and not any("JOIN" in sql for sql in history_queries)
    assert "stock_sync" in page and "store_stats" in page


def test_detail_page_shows_the_output_tail_and_all_attempts_of_the_run(admin_client):
    task = make_task("detailed")
    first = make_execution(
        task,
        "failed",
        run_id="d" * 32,
        attempt=1,
        error="exit 3",
        output="line one\n<script>alert(1)</script>\n",
    )
    second = make_execution(task, "succeeded", run_id="d" * 32, attempt=2)

    page = admin_client.get(reverse("admin:cronjobs_execution_change", args=[first.pk]))
    html = page.content.decode()

    assert "line one" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert reverse("admin:cronjobs_execution_change", args=[second.pk]) in html
    assert "#2" in html and 'name="_save"' not in html  # read-only


def test_history_cannot_be_added_changed_or_deleted(admin_client, history):
    row = history["ok"]
    assert admin_client.get(reverse("admin:cronjobs_execution_add")).status_code == 403
    delete = reverse("admin:cronjobs_execution_delete", args=[row.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    change = reverse("admin:cronjobs_execution_change", args=[row.pk])
    admin_client.post(change, {"status": "succeeded"})
    assert Execution.objects.get(pk=row.pk).status == "succeeded"
    assert Execution.objects.count() == 4


def export(client, query: str = "", fmt: str = "csv"):
    """Submit the export form as an operator would: every column ticked, one format."""
    form = client.get(EXPORT + query).context["form"]
    formats = {title: value for value, title in form.fields["format"].choices}
    data = {name: "on" for name, f in form.fields.items() if getattr(f, "is_selectable_field", 0)}
    return client.post(EXPORT + query, {**data, "format": formats[fmt]})


def csv_rows(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_csv_export_has_the_filtered_rows_with_their_values(admin_client, history):
    response = export(admin_client, "?status__exact=failed&q=stock")

    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    (row,) = csv_rows(response)
    failed = history["failed"]
    assert row["id"] == str(failed.pk) and row["run_id"] == failed.run_id
    assert row["task"] == "stock_sync" and row["status"] == "failed" and row["host"] == "app2"
    assert row["error"] == "OperationalError: deadlock found"
    assert dt.datetime.fromisoformat(row["started_at"]) == failed.started_at
    assert "output" not in row


def test_csv_export_streams_every_row_across_keyset_chunks(admin_client, monkeypatch):
    monkeypatch.setattr("cronjobs.admin.resources.KEYSET_CHUNK", 7)
    monkeypatch.setattr(export_module, "ROWS_PER_WRITE", 5)
    task = make_task("many")
    same_time = NOW - dt.timedelta(hours=1)  # ties on started_at are broken by id
    Execution.objects.bulk_create(
        Execution(
            task=task,
            run_id=f"k{i}",
            status="succeeded",
            started_at=same_time if i % 3 else NOW - dt.timedelta(minutes=i),
        )
        for i in range(40)
    )

    rows = csv_rows(export(admin_client))

    assert sorted(r["run_id"] for r in rows) == sorted(f"k{i}" for i in range(40))
    started = [dt.datetime.fromisoformat(r["started_at"]) for r in rows]
    assert started == sorted(started, reverse=True)


def test_export_offers_the_librarys_other_formats_and_limits_in_memory_ones(
    admin_client, history, monkeypatch
):
    response = export(admin_client, fmt="json")
    assert response["Content-Type"] == "application/json"
    assert {r["id"] for r in json.loads(response.content)} == {str(r.pk) for r in history.values()}

    monkeypatch.setattr(export_module, "IN_MEMORY_LIMIT", 3)
    refused = export(admin_client, fmt="json")
    assert "limited to 3 rows" in refused.content.decode()


def test_export_needs_the_view_permission(client, history):
    client.force_login(make_user("no_history", "view_task"))
    assert client.get(LIST).status_code == 403
    assert client.get(EXPORT).status_code == 403
    assert client.post(EXPORT, {"format": "0", "executionresource_id": "on"}).status_code == 403

    client.force_login(make_user("reader", "view_execution"))
    assert len(csv_rows(export(client))) == 4


def test_list_and_detail_show_a_functions_peak_and_the_memory_it_added(admin_client):
    row = make_execution(
        make_task("grower"),
        "succeeded",
        peak_rss_bytes=110 * 1024**2,
        memory_added_bytes=64 * 1024**2,
    )
    listing = admin_client.get(LIST).content.decode()
    detail = admin_client.get(reverse("admin:cronjobs_execution_change", args=[row.pk]))
    assert "110.0 MiB" in listing  # the job's own memory is on its page, to keep the list narrow
    html = detail.content.decode()
    assert "110.0 MiB" in html and "64.0 MiB" in html and "job memory" in html.lower()
