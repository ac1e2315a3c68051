"""Smart Cron V2 history import (cronjobs/legacy/history.py, LegacyMetricsResource): good rows,
a bad row, a re-import, an unknown task, the three formats, the dashboard's figures, and the
admin's Import button (superusers only)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo

import pytest
import tablib
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from import_export.formats import base_formats

from cronjobs.legacy.history import ImportFailed, import_file
from cronjobs.legacy.resource import LegacyMetricsResource
from cronjobs.models import Execution, Task
from cronjobs.reporting import stats
from tests.helpers import make_user

HEADER = ["id", "task_name", "success", "execution_time", "memory_used", "error_message",
          "retry_count", "created_at"]  # fmt: skip
ROWS = [
    [1, "flagged_products_refresh_store_stats", 1, 4.52, 33554432, "", 0, "2026-11-20 02:00:05"],
    [
        2,
        "flagged_products_refresh_store_stats",
        0,
        180.0,
        41943040,
        "Timeout after 180s",
        2,
        "2026-11-20 02:30:03",
    ],
    [3, "flagged_products_legacy_export", 1, 12.25, 67108864, "", 0, "2026-11-21 03:00:00"],
    [4, "nightly_backup", 1, 60, "NULL", "", 0, "2026-11-21T03:00:00+00:00"],
]
AUCKLAND = zoneinfo.ZoneInfo("Pacific/Auckland")


def v2_file(tmp_path, rows=ROWS, header=HEADER, name="metrics.csv", delimiter=","):
    path = tmp_path / name
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def imported() -> list[Execution]:
    return list(Execution.objects.filter(trigger="imported").select_related("task"))


@pytest.mark.django_db
def test_good_rows_become_finished_executions_with_the_v2_figures(tmp_path):
    report = import_file(v2_file(tmp_path), time_zone=AUCKLAND)
    assert (report.rows, report.added, report.already_there) == (4, 4, 0)
    rows = sorted(imported(), key=lambda e: e.finished_at)
    assert {e.host for e in rows} == {"legacy"}
    first = rows[0]
    assert (first.task.name, first.status, first.attempt) == ("refresh_store_stats", "succeeded", 1)
    assert first.finished_at == dt.datetime(2026, 11, 20, 2, 0, 5, tzinfo=AUCKLAND)
    assert first.started_at == first.finished_at - dt.timedelta(seconds=4.52)
    assert (first.duration, first.peak_rss_bytes, first.job_memory_bytes) == (
        4.52,
        32 << 20,
        32 << 20,
    )
    second = rows[1]
    assert (second.status, second.attempt, second.error) == ("failed", 3, "Timeout after 180s")
    backup = next(e for e in rows if e.task.name == "nightly_backup")
    assert backup.peak_rss_bytes is None  # mysql -B's NULL
    assert backup.finished_at == dt.datetime(2026, 11, 21, 3, tzinfo=dt.UTC)  # its own offset
    assert all(len(e.run_id) == 32 for e in rows)


@pytest.mark.django_db
def test_unknown_tasks_are_created_retired_and_known_ones_reused(tmp_path):
    declared = Task.objects.get(name="refresh_store_stats")
    report = import_file(v2_file(tmp_path))
    assert report.new_tasks == ["legacy_export", "nightly_backup"]
    legacy = Task.objects.get(name="legacy_export")
    assert legacy.is_retired and legacy.enabled  # declaring it later makes it run as usual
    assert legacy.source == "imported from Smart Cron V2"
    assert Task.objects.get(pk=declared.pk).retired_at is None
    assert Execution.objects.filter(task=declared, trigger="imported").count() == 2


@pytest.mark.django_db
def test_a_reimport_adds_nothing_and_a_longer_file_adds_only_its_new_rows(tmp_path):
    import_file(v2_file(tmp_path))
    again = import_file(v2_file(tmp_path))
    assert (again.added, again.already_there) == (0, 4)
    more = [*ROWS, [5, "flagged_products_refresh_store_stats", 1, 4.0, 1024, "", 0,
                    "2026-11-22 02:00:00"]]  # fmt: skip
    grown = import_file(v2_file(tmp_path, more))
    assert (grown.added, grown.already_there) == (1, 4)
    assert len(imported()) == 5


@pytest.mark.django_db
def test_a_bad_row_names_its_line_and_column_and_nothing_is_written(tmp_path):
    rows = [*ROWS[:2], [9, "flagged_products_x", "maybe", 1, 1, "", 0, "2026-11-20 02:00:00"],
            *ROWS[2:], [10, "flagged_products_x", 1, 1, 1, "", 0, "20/11/2026"]]  # fmt: skip
    with pytest.raises(ImportFailed) as failure:
        import_file(v2_file(tmp_path, rows))
    assert failure.value.problems == [
        "line 4, column success: 'maybe' is not 1 or 0",
        "line 7, column created_at: '20/11/2026' is not a date and time",
    ]
    assert imported() == []
    assert not Task.objects.filter(name="x").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (["", 1, 1, 1, "2026-11-20 02:00"], "line 2, column task_name: is empty"),
        (["Bad-Name", 1, 1, 1, "2026-11-20 02:00"], "column task_name: 'Bad-Name' does not map"),
        (["t", 1, "-3", 1, "2026-11-20 02:00"], "column execution_time: '-3' is not a number of 0"),
        (["t", 1, "fast", 1, "2026-11-20 02:00"], "column execution_time: 'fast' is not a number"),
        (["t", 1, 1, "1.5", "2026-11-20 02:00"], "column memory_used: '1.5' is not a whole number"),
        (["t", 1, 1, "nan", "2026-11-20 02:00"], "column memory_used: 'nan' is not a number of 0"),
        (["t", 1, 1, 1, ""], "line 2, column created_at: is empty"),
    ],
)
def test_each_bad_value_is_named(tmp_path, row, problem):
    header = ["task_name", "success", "execution_time", "memory_used", "created_at"]
    with pytest.raises(ImportFailed) as failure:
        import_file(v2_file(tmp_path, [row], header))
    assert problem in failure.value.problems[0]


@pytest.mark.django_db
def test_a_file_without_a_required_column_is_refused(tmp_path):
    path = v2_file(tmp_path, [r[:-1] for r in ROWS], HEADER[:-1])
    with pytest.raises(ImportFailed, match="line 1: the file has no column created_at"):
        import_file(path)


@pytest.mark.django_db
def test_mysql_batch_tsv_with_null_and_escapes(tmp_path):
    path = tmp_path / "metrics.txt"  # mysql -B -e 'SELECT * FROM flagged_products_cron_metrics'
    path.write_text(
        "task_name\tsuccess\texecution_time\tmemory_used\terror_message\tattempt\tcreated_at\n"
        "flagged_products_check_achievements\t0\t8.5\tNULL\tPHP Fatal error:\\tline 1\\nline 2"
        "\t2\t2026-11-20 06:00:01\n"
    )
    report = import_file(path)
    assert report.added == 1
    (row,) = imported()
    assert (row.task.name, row.attempt, row.peak_rss_bytes) == ("check_achievements", 2, None)
    assert row.error == "PHP Fatal error:\tline 1\nline 2"


@pytest.mark.django_db
def test_xlsx_through_tablib(tmp_path):
    data = tablib.Dataset(headers=["task_name", "success", "execution_time", "memory_used",
                                   "created_at"])  # fmt: skip
    data.append(["flagged_products_refresh_leaderboard", 1, 12.0, 64 << 20,
                 dt.datetime(2026, 11, 20, 2, 0, 12)])  # fmt: skip
    path = tmp_path / "metrics.xlsx"
    path.write_bytes(data.export("xlsx"))
    assert import_file(path).added == 1
    assert imported()[0].task.name == "refresh_leaderboard"


@pytest.mark.django_db
def test_imported_days_show_in_the_rollups_the_dashboard_reads(tmp_path, settings):
    settings.TIME_ZONE = "UTC"
    now = dt.datetime.now(dt.UTC)
    day = (now - dt.timedelta(days=3)).replace(hour=2, minute=0, second=0, microsecond=0)
    before = stats.daily_trends(30)
    task = Task.objects.get(name="refresh_store_stats")
    assert not [t for t in before if t.task_id == task.id and t.finished]
    when = day.strftime("%Y-%m-%d %H:%M:%S")
    rows = [
        ["flagged_products_refresh_store_stats", 1, 5.0, 1024, when],
        ["flagged_products_refresh_store_stats", 0, 9.0, 2048, when],
    ]
    header = ["task_name", "success", "execution_time", "memory_used", "created_at"]
    import_file(v2_file(tmp_path, rows, header), time_zone=dt.UTC)
    after = [t for t in stats.daily_trends(30) if t.task_id == task.id and t.finished]
    assert [(t.date, t.succeeded, t.failed) for t in after] == [(day.date(), 1, 1)]


@pytest.mark.django_db
def test_the_command_dry_run_writes_nothing_and_the_import_reports(tmp_path):
    out = io.StringIO()
    call_command("import_legacy_metrics", str(v2_file(tmp_path)), "--dry-run", stdout=out)
    assert "metrics.csv: 4 row(s) from 2026-11-20" in out.getvalue()
    assert "would add 4, 0 already there" in out.getvalue()
    assert "new retired task(s): legacy_export, nightly_backup" in out.getvalue()
    assert imported() == [] and not Task.objects.filter(name="legacy_export").exists()
    out = io.StringIO()
    call_command("import_legacy_metrics", str(v2_file(tmp_path)), stdout=out)
    assert "added 4, 0 already there" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["missing.csv"], "no such file", 2),
        (["metrics.csv", "--time-zone", "Mars/Olympus"], "'Mars/Olympus' is not a time zone", 2),
        (["metrics.json"], "unknown format 'json'", 2),
    ],
)
def test_command_bad_input_is_named(tmp_path, args, message, code):
    v2_file(tmp_path)
    (tmp_path / "metrics.json").write_text("[]")
    with pytest.raises(CommandError, match=message) as failure:
        call_command("import_legacy_metrics", str(tmp_path / args[0]), *args[1:])
    assert failure.value.returncode == code


@pytest.mark.django_db(transaction=True)
def test_the_command_in_a_child_process_exits_1_on_a_bad_row(tmp_path, manage):
    rows = [*ROWS, [9, "flagged_products_x", 1, "slow", 1, "", 0, "2026-11-20 02:00:00"]]
    result = manage("import_legacy_metrics", str(v2_file(tmp_path, rows)))
    assert result.returncode == 1
    assert "metrics.csv: nothing imported:" in result.stderr
    assert "line 6, column execution_time: 'slow' is not a number" in result.stderr
    assert not Execution.objects.filter(trigger="imported").exists()
    done = manage("import_legacy_metrics", str(v2_file(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert Execution.objects.filter(trigger="imported", host="legacy").count() == 4


# The admin's Import button: superusers only.

IMPORT_URL = "/admin/cronjobs/execution/import/"
PROCESS_URL = "/admin/cronjobs/execution/process_import/"
ALL_PERMS = ("view_execution", "add_execution", "change_execution", "delete_execution",
             "view_task", "change_task")  # fmt: skip


def admin_client_as(kind: str) -> Client:
    client = Client()
    if kind == "anonymous":
        return client
    users = {
        "non_staff": lambda: make_user("shopper", staff=False),
        "staff": lambda: make_user("nobody"),
        "staff_with_permissions": lambda: make_user("operator", *ALL_PERMS),
        "superuser": lambda: User.objects.create_superuser("root", password="pw"),
    }
    client.force_login(users[kind]())
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("anonymous", 302),
        ("non_staff", 302),
        ("staff", 403),
        ("staff_with_permissions", 403),
        ("superuser", 200),
    ],
)
def test_import_page_access_matrix(kind, expected, tmp_path):
    client = admin_client_as(kind)
    assert client.get(IMPORT_URL).status_code == expected
    posted = client.post(PROCESS_URL, {"import_file_name": "x", "format": "0"})
    assert posted.status_code == (expected if expected != 200 else 200)
    assert not Execution.objects.filter(trigger="imported").exists()
    if kind == "staff_with_permissions":
        page = client.get("/admin/cronjobs/execution/")
        assert page.status_code == 200 and IMPORT_URL.encode() not in page.content


def upload(client: Client, path, fmt: str = "0"):
    with path.open("rb") as handle:
        content = SimpleUploadedFile(path.name, handle.read())
    return client.post(IMPORT_URL, {"import_file": content, "format": fmt, "resource": "0"})


@pytest.mark.django_db
def test_admin_import_is_a_dry_run_then_a_confirmed_import(tmp_path):
    client = admin_client_as("superuser")
    assert IMPORT_URL.encode() in client.get("/admin/cronjobs/execution/").content
    preview = upload(client, v2_file(tmp_path))
    assert preview.status_code == 200
    assert imported() == []  # the dry run wrote nothing
    assert not Task.objects.filter(name="legacy_export").exists()
    form = preview.context["confirm_form"]
    confirm = {name: form.initial.get(name, "") for name in form.fields}
    done = client.post(PROCESS_URL, confirm)
    assert done.status_code == 302
    assert len(imported()) == 4
    assert Task.objects.get(name="legacy_export").is_retired
    again = upload(client, v2_file(tmp_path))
    form = again.context["confirm_form"]
    client.post(PROCESS_URL, {name: form.initial.get(name, "") for name in form.fields})
    assert len(imported()) == 4  # a re-import adds nothing


@pytest.mark.django_db
def test_admin_import_reports_a_bad_row_with_line_and_column(tmp_path):
    client = admin_client_as("superuser")
    rows = [*ROWS[:1], [9, "flagged_products_x", 1, 1, 1, "", 0, "yesterday"]]
    page = upload(client, v2_file(tmp_path, rows))
    assert page.status_code == 200
    assert (
        b"line 3, column created_at: &#x27;yesterday&#x27; is not a date and time" in page.content
    )
    assert "confirm_form" not in page.context
    assert imported() == [] and not Task.objects.filter(name="x").exists()


def _never_parsed(monkeypatch):
    """Fails the test if django-import-export builds a dataset from the upload."""

    def parse(*args, **kwargs):
        raise AssertionError("the whole file was parsed")

    for name in ("CSV", "TSV", "XLSX"):
        monkeypatch.setattr(getattr(base_formats, name), "create_dataset", parse)


def _many_rows(count: int) -> list[list[object]]:
    return [
        [i, "flagged_products_x", 1, 1.0, 1, "", 0, "2026-11-20 02:00:05"] for i in range(count)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "fmt"), [("metrics.csv", "0"), ("metrics.tsv", "1")])
def test_admin_import_refuses_too_many_rows_before_parsing_the_file(
    tmp_path, monkeypatch, name, fmt
):
    monkeypatch.setattr(LegacyMetricsResource, "ADMIN_ROW_LIMIT", 50)
    delimiter = "\t" if fmt == "1" else ","
    path = v2_file(tmp_path, _many_rows(51), name=name, delimiter=delimiter)
    _never_parsed(monkeypatch)
    page = upload(admin_client_as("superuser"), path, fmt)
    assert page.status_code == 200
    assert b"the file has more than 50 rows: the admin imports up to 50" in page.content
    assert b"manage.py import_legacy_metrics" in page.content
    assert "confirm_form" not in page.context and imported() == []


@pytest.mark.django_db
def test_admin_import_counts_rows_not_lines_and_takes_a_file_at_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(LegacyMetricsResource, "ADMIN_ROW_LIMIT", 3)
    rows = [[i, "flagged_products_x", 0, 1.0, 1, "line one\nline two\nthree", 0,
             "2026-11-20 02:00:05"] for i in range(3)]  # fmt: skip
    page = upload(admin_client_as("superuser"), v2_file(tmp_path, rows))
    assert "confirm_form" in page.context, page.content[-2000:]


@pytest.mark.django_db
def test_admin_import_refuses_a_big_xlsx_by_its_rows_and_any_file_by_its_size(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(LegacyMetricsResource, "ADMIN_ROW_LIMIT", 50)
    data = tablib.Dataset(*_many_rows(51), headers=HEADER)
    path = tmp_path / "metrics.xlsx"
    path.write_bytes(data.export("xlsx"))
    _never_parsed(monkeypatch)
    client = admin_client_as("superuser")
    assert b"more than 50 rows" in upload(client, path, "2").content  # its declared size
    import openpyxl

    book = openpyxl.Workbook(write_only=True)  # writes no size: the rows are counted
    sheet = book.create_sheet()
    for row in [HEADER, *_many_rows(51)]:
        sheet.append(row)
    unsized = tmp_path / "unsized.xlsx"
    book.save(unsized)
    assert b"more than 50 rows" in upload(client, unsized, "2").content
    monkeypatch.setattr(LegacyMetricsResource, "ADMIN_BYTE_LIMIT", 1000)
    big = upload(client, v2_file(tmp_path, _many_rows(40)))
    assert b"bytes: the admin imports up to 1,000" in big.content
    assert imported() == []
