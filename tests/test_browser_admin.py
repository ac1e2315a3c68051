"""The control room in a real browser (Playwright driving Debian's chromium) against a live
server: log in, see the dashboard's charts, toggle a task off and on, run it now and watch its
execution appear, export CSV and read the downloaded file. Screenshots of the dashboard and
the task list go to test-artifacts/."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

from cronjobs.models import Execution, Task
from cronjobs.supervisor.sync import sync_all
from demo import history
from tests.helpers import ROOT, database_url, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-pw-1"


def _require_browser():
    missing = None
    if not Path(CHROMIUM).exists() or not shutil.which(CHROMIUM):
        missing = "Debian's chromium (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        missing = "Playwright for Python (pip install -r requirements-dev.txt)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need {missing}")
        pytest.skip(f"browser tests need {missing}")


@pytest.fixture
def page(live_server, monkeypatch, log_dir):
    _require_browser()
    from playwright.sync_api import sync_playwright

    # "Run now" starts `manage.py runjob` in a new process: point it at the test database.
    monkeypatch.setenv("DATABASE_URL", database_url())
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    monkeypatch.setenv("LOG_DIR", str(log_dir))
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # still plain synchronous code (Django's documented escape hatch for such tools).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(
            base_url=live_server.url, accept_downloads=True, viewport={"width": 1400, "height": 900}
        )
        context.set_default_timeout(20_000)
        yield context.new_page()
        context.close()
        browser.close()


@pytest.fixture
def operator(django_user_model):
    sync_all()
    history.seed(days=3)
    return django_user_model.objects.create_superuser("operator", "op@example.com", PASSWORD)


def log_in(page) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#fc-dashboard-link")


def test_dashboard_shows_rendered_charts(page, operator):
    log_in(page)
    page.click("#fc-dashboard-link")
    page.wait_for_selector("#fc-health")
    box = page.locator("#fc-chart-runs svg").bounding_box()
    assert box and box["width"] > 600 and box["height"] > 200
    for chart in ("fc-chart-success", "fc-chart-duration", "fc-chart-memory"):
        multiples = page.locator(f"#{chart} figure svg")
        assert multiples.count() >= 5, chart  # one small chart per seeded task
        box = multiples.first.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 150, chart
    assert page.locator("#fc-chart-runs svg .fc-bars rect").count() > 0
    assert "critical" in page.inner_text("#fc-health")  # the seeded open circuit
    assert_chart_labels_readable(page)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    page.locator("#fc-chart-success").screenshot(path=str(ARTIFACTS / "dashboard-success.png"))

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: wide tables scroll inside
    page.reload()
    page.wait_for_selector("#fc-health")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_chart_labels_readable(page)
    page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    page.locator("#fc-chart-runs").screenshot(path=str(ARTIFACTS / "dashboard-phone-runs.png"))

    page.emulate_media(color_scheme="dark")  # the admin's dark theme follows the system's
    page.set_viewport_size({"width": 1400, "height": 900})
    page.reload()
    page.wait_for_selector("#fc-health")
    colours = page.evaluate(DARK_COLOURS)
    assert colours["text"] == colours["body"] == "rgb(238, 238, 238)"  # labels in the theme's text
    assert colours["line"] == "rgb(129, 212, 250)"  # the trend line in its link colour
    page.locator("#fc-chart-success").screenshot(path=str(ARTIFACTS / "dashboard-dark.png"))


# What the chart text and the trend line are painted with, beside the page's text colour.
DARK_COLOURS = """() => ({
  body: getComputedStyle(document.body).color,
  text: getComputedStyle(document.querySelector("#fc-chart-success figure svg text")).fill,
  line: getComputedStyle(document.querySelector("#fc-chart-success .fc-line")).stroke,
})"""


# Every chart's text, and the x-axis labels that overlap their neighbour, as drawn.
CHART_TEXT = """() => {
  const found = {texts: [], overlaps: []};
  for (const svg of document.querySelectorAll("#fc-dashboard-root svg")) {
    for (const t of svg.querySelectorAll("text")) found.texts.push(t.textContent);
    const labels = [...svg.querySelectorAll(".fc-x text")]
      .filter((t) => t.textContent.trim() && t.getBoundingClientRect().width > 0)
      .map((t) => [t.textContent, t.getBoundingClientRect()])
      .sort((a, b) => a[1].left - b[1].left);
    for (let i = 1; i < labels.length; i++) {
      if (labels[i][1].left < labels[i - 1][1].right - 0.5) {
        found.overlaps.push(labels[i - 1][0] + " / " + labels[i][0]);
      }
    }
  }
  return found;
}"""


def assert_chart_labels_readable(page) -> None:
    """No label cut short ("16 N…"), none drawn over its neighbour, and every trend chart
    names its unit and window."""
    found = page.evaluate(CHART_TEXT)
    assert found["texts"], "no chart text at all"
    cut = [text for text in found["texts"] if "…" in text or text.rstrip().endswith("...")]
    assert cut == []
    assert found["overlaps"] == []
    for chart in ("fc-chart-success", "fc-chart-duration", "fc-chart-memory"):
        for text in page.locator(f"#{chart} figure svg").all_text_contents():
            assert "last " in text and " days" in text, text[:80]  # the window, on the x axis


def test_toggle_a_task_off_and_on_from_the_list(page, operator):
    log_in(page)
    page.goto("/admin/cronjobs/task/")
    page.screenshot(path=str(ARTIFACTS / "task-list.png"), full_page=True)
    row = page.locator("#result_list tr", has_text="heartbeat")
    for enabled in (False, True):
        row.locator("input[name$='-enabled']").set_checked(enabled)
        page.click("input[name=_save]")
        page.wait_for_selector(".messagelist .success")
        assert Task.objects.get(name="heartbeat").enabled is enabled


def test_run_now_and_see_the_new_execution(page, operator):
    log_in(page)
    page.goto("/admin/cronjobs/task/")
    page.locator("#result_list tr", has_text="heartbeat").locator(".action-select").check()
    page.select_option("select[name=action]", "run_now")
    page.click("button[name=index]")
    message = page.locator(".messagelist li", has_text="Started heartbeat in the background")
    message.locator("a").click()
    rows = page.locator("#result_list")  # absent until the run has inserted its first row

    def finished_on_reload() -> bool:
        page.reload()
        return bool(rows.count()) and "succeeded" in rows.inner_text()

    wait_for(finished_on_reload, timeout=60, interval=0.5, what="the run to show as succeeded")
    assert "Admin" in page.inner_text("#result_list")  # the trigger
    assert Execution.objects.filter(task__name="heartbeat", trigger="admin").count() == 1


def test_export_csv_downloads_the_filtered_rows(page, operator):
    task = Task.objects.get(name="heartbeat")
    expected = set(Execution.objects.filter(task=task).values_list("run_id", flat=True))
    log_in(page)
    page.goto(f"/admin/cronjobs/execution/?task__id__exact={task.pk}")
    page.click("a.export_link")
    page.select_option("#id_format", label="csv")
    with page.expect_download() as download_info:
        page.click("#export-form input[type=submit], form input[type=submit][value='Submit']")
    path = download_info.value.path()
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["run_id"] for r in rows} == expected
    assert {r["task"] for r in rows} == {"heartbeat"}


def test_running_now_panel_and_stop_from_the_admin(page, operator):
    import subprocess
    import sys

    runjob = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runjob", "test_sleep"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        mine = Execution.objects.filter(task__name="test_sleep", pid=runjob.pid)
        wait_for(lambda: mine.filter(status="running").exists())
        log_in(page)
        page.goto("/admin/cronjobs/task/")
        panel_row = page.locator("#fc-running-rows tr[data-task=test_sleep]")
        panel_row.wait_for()
        assert str(runjob.pid) in panel_row.inner_text()
        assert "1 of 1" in panel_row.inner_text() and "/ 10 min 0 s" in panel_row.inner_text()
        assert "MiB" in panel_row.inner_text()
        page.screenshot(path=str(ARTIFACTS / "task-list-running.png"), full_page=True)
        page.locator("#result_list tr", has_text="test_sleep").locator(".action-select").check()
        page.select_option("select[name=action]", "stop")
        page.click("button[name=index]")
        page.wait_for_selector(".messagelist li:has-text('stop requested')")
        assert runjob.wait(timeout=20) == 1
    finally:
        runjob.kill()
    row = mine.get()
    assert (row.status, row.stopped_by) == ("cancelled", "operator")
    page.locator("#fc-running-rows", has_text="Nothing is running.").wait_for()
    page.goto("/admin/dashboard/")
    page.locator("#fc-running-rows", has_text="Nothing is running.").wait_for()
