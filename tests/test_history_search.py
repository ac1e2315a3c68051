"""cronjobs/admin/search.py: the execution history's search box, term by term, on SQLite and
MariaDB. MariaDB's FULLTEXT index sees a row only once its transaction commits, so the tests of
older attempts (found through that index) commit their rows: django_db(transaction=True)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cronjobs.admin import search
from cronjobs.models import Execution
from tests.helpers import ago, make_execution, make_task

pytestmark = pytest.mark.django_db

LIST = reverse("admin:cronjobs_execution_changelist")
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
MARIADB = connection.vendor == "mysql"


def found(client, term: str) -> set[int]:
    response = client.get(LIST, {"q": term})
    assert response.status_code == 200, term
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
                host="app2.example.com",
                error="OperationalError: deadlock found",
            ),
            "timeout": make_execution(
                stats,
                "timed_out",
                ago(days=3),
                host="app1",
                run_id="ab12cd34" + "0" * 24,
                error="timed out after 60 s: stock_sync held the lock",
            ),
            "old": make_execution(stats, "succeeded", ago(days=40), host="db1"),
        }
    with time_machine.travel(NOW, tick=False):
        yield rows


@pytest.fixture
def older_attempts(monkeypatch):
    """Attempts older than the newest SCAN_ROWS (3 here): only MariaDB's index reaches them."""
    monkeypatch.setattr(search, "SCAN_ROWS", 3)
    task = make_task("importer")
    rows = {
        "deadlock": make_execution(task, "failed", ago(days=9), error="OperationalError: deadlock"),
        "table": make_execution(task, "failed", ago(days=8), error="no such table: stock"),
        "memory": make_execution(
            task, "memory_exceeded", ago(days=7), error="memory_exceeded in job"
        ),
    }
    for hours in (3, 2, 1):
        make_execution(task, "succeeded", ago(hours=hours))
    return rows


def test_run_id_prefix_finds_that_run(admin_client, history):
    assert found(admin_client, "ab12cd") == {history["timeout"].pk}
    assert found(admin_client, "AB12CD34") == {history["timeout"].pk}


def test_hex_word_that_begins_no_run_id_is_searched_as_error_text(admin_client):
    row = make_execution(make_task(), "failed", error="facade service unavailable")
    assert found(admin_client, "facade") == {row.pk}


def test_part_of_a_task_name_shows_that_tasks_history(admin_client, history):
    assert found(admin_client, "stock") == {history["ok"].pk, history["failed"].pk}
    assert found(admin_client, "STORE_stats") == {history["timeout"].pk, history["old"].pk}


def test_host_is_matched_from_its_beginning(admin_client, history):
    assert found(admin_client, "app2") == {history["failed"].pk}
    assert found(admin_client, "app1") == {history["ok"].pk, history["timeout"].pk}
    assert found(admin_client, "example.com") == set()  # the middle of a host name is not


def test_error_text_needs_every_word_in_any_order(admin_client, history):
    assert found(admin_client, "deadlock") == {history["failed"].pk}
    assert found(admin_client, "found DEADLOCK") == {history["failed"].pk}
    assert found(admin_client, "deadlock missing") == set()
    assert found(admin_client, "nothing like it") == set()


def test_recent_attempts_match_a_word_anywhere_in_the_text(admin_client, history):
    assert found(admin_client, "lock") == {history["failed"].pk, history["timeout"].pk}


def test_first_kind_that_names_something_wins_and_a_qualifier_chooses(admin_client, history):
    """`stock_sync` is a task and also in the timeout's error text: the task wins."""
    assert found(admin_client, "stock_sync") == {history["ok"].pk, history["failed"].pk}
    assert found(admin_client, "error:stock_sync") == {history["timeout"].pk}
    assert found(admin_client, "Task: store") == {history["timeout"].pk, history["old"].pk}
    assert found(admin_client, "host:app1") == {history["ok"].pk, history["timeout"].pk}
    assert found(admin_client, "run:ab12cd") == {history["timeout"].pk}


def test_a_qualifier_that_names_nothing_finds_nothing(admin_client, history):
    assert found(admin_client, "host:stock") == set()
    assert found(admin_client, "task:app1") == set()
    assert found(admin_client, "run:not-hex") == set()
    assert found(admin_client, "error:app1") == set()
    assert len(found(admin_client, "host:")) == 4  # nothing to look for: the whole history
    # Not a qualifier: the whole term is text.
    assert found(admin_client, "OperationalError: deadlock") == {history["failed"].pk}


def test_search_keeps_the_lists_other_filters(admin_client, history):
    response = admin_client.get(LIST, {"q": "app1", "status__exact": "timed_out"})
    assert {row.pk for row in response.context["cl"].result_list} == {history["timeout"].pk}


def test_error_text_shows_the_newest_matches_up_to_the_cap(admin_client, monkeypatch):
    monkeypatch.setattr(search, "TEXT_MATCHES", 2)
    task = make_task()
    rows = [make_execution(task, "failed", ago(hours=h), error="disk full") for h in (3, 2, 1)]
    make_execution(task, "failed", error="other")
    assert found(admin_client, "disk full") == {rows[1].pk, rows[2].pk}


@pytest.mark.django_db(transaction=True)
def test_older_attempts_are_found_by_word_beginnings_on_mariadb_only(admin_client, older_attempts):
    rows = older_attempts
    if not MARIADB:
        pytest.skip("SQLite searches the newest SCAN_ROWS attempts only")
    assert found(admin_client, "deadlock") == {rows["deadlock"].pk}
    assert found(admin_client, "Dead") == {rows["deadlock"].pk}
    assert found(admin_client, "lock") == set()  # inside a word: only in recent attempts
    assert found(admin_client, "exceeded") == set()  # memory_exceeded is one word
    # Words the index lacks (short, or a stopword) still have to be there.
    assert found(admin_client, "no such table") == {rows["table"].pk}
    assert found(admin_client, "an such table") == set()
    assert found(admin_client, "memory_exceeded in job") == {rows["memory"].pk}
    # A term of such words only is not looked for in older attempts.
    assert found(admin_client, "in") == set()


@pytest.mark.django_db(transaction=True)
def test_sqlite_searches_only_the_newest_attempts(admin_client, older_attempts):
    if MARIADB:
        pytest.skip("MariaDB also searches older attempts through its FULLTEXT index")
    assert found(admin_client, "deadlock") == set()
    assert found(admin_client, "such table") == set()


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_newest_matches_of_recent_and_older_attempts_are_merged(admin_client, monkeypatch):
    monkeypatch.setattr(search, "SCAN_ROWS", 2)
    monkeypatch.setattr(search, "TEXT_MATCHES", 3)
    task = make_task()
    old = [make_execution(task, "failed", ago(days=d), error="disk full") for d in (5, 4, 3, 2)]
    new = make_execution(task, "failed", ago(hours=2), error="disk full")
    make_execution(task, "succeeded", ago(hours=1))
    assert found(admin_client, "disk full") == {new.pk, old[3].pk, old[2].pk}


@pytest.mark.parametrize(
    "term",
    [
        "",
        "   ",
        ":",
        "error:",
        '+-*"()~<>@',
        '"deadlock',
        "deadlock*",
        "-deadlock",
        "@2 deadlock",
        "(a|b) & c",
        "%",
        "_",
        "\\",
        "'; DROP TABLE cronjobs_execution; --",
        "x" * 60_000,
        "dead\x00lock",
        " ".join(["deadlock"] * 3_000),
        "ab cd ef",
        "Zürich ☃ 错误 💥",
        "café",
        "a" * 85,
    ],
    ids=lambda term: repr(term[:20]),
)
def test_no_term_breaks_the_page(admin_client, history, term):
    response = admin_client.get(LIST, {"q": term})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) <= 4


def test_boolean_operators_in_a_term_are_read_as_plain_separators(admin_client, history):
    """In MariaDB's boolean mode `-found` would exclude rows with `found`; here it is a word."""
    assert found(admin_client, "+deadlock -found") == {history["failed"].pk}
    assert found(admin_client, '"deadlock" found*') == {history["failed"].pk}


def test_help_text_states_the_rules_and_the_bound(admin_client):
    page = admin_client.get(LIST).content.decode()
    assert "Start with run:, task:, host: or error:" in page
    bound = "as word beginnings in older ones" if MARIADB else "among the newest 100,000"
    assert bound in page


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("term", ["web07", "db-3.internal", "connection refused"])
def test_a_search_that_finds_nothing_reads_indexes_not_the_table(admin_client, monkeypatch, term):
    """Every query a miss runs, EXPLAINed on MariaDB: none scans the execution table (type
    ALL); the error text goes through the FULLTEXT index and the host through its own index."""
    monkeypatch.setattr(search, "SCAN_ROWS", 100)
    tasks = [make_task() for _ in range(5)]
    Execution.objects.bulk_create(
        Execution(
            task=tasks[n % 5],
            run_id=f"{n:032x}",
            status="failed" if n % 7 == 0 else "succeeded",
            host=f"app{n % 9}",
            started_at=NOW - dt.timedelta(minutes=n),
            error="OperationalError: deadlock found" if n % 7 == 0 else "",
        )
        for n in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE TABLE cronjobs_execution")
        cursor.fetchall()
    with CaptureQueriesContext(connection) as queries:
        assert found(admin_client, term) == set()
    plans = {}
    for query in queries.captured_queries:
        if "cronjobs_execution" in query["sql"] and query["sql"].startswith("SELECT"):
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN " + query["sql"])
                columns = [c[0] for c in cursor.description]
                plans[query["sql"]] = [dict(zip(columns, row, strict=True)) for row in cursor]
    steps = [step for plan in plans.values() for step in plan if step["table"]]
    assert steps and all(step["type"] != "ALL" for step in steps), plans
    keys = {step["key"] for step in steps}
    assert {"execution_host_started", "execution_error_fulltext"} <= keys, plans
