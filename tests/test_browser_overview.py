"""The control room as an operator sees it at 3 a.m., through gunicorn (tests/live_gunicorn.py)
and Debian's Chromium, on a 1440x900 laptop and a 390x844 phone: the overview shows every task
and a failing task's state above the fold; the task, history and alert lists never scroll
sideways, and on a phone every row shows its status and name; Stop works from the overview's
Running now panel; a task's page and the dashboard's charts fit a phone. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cronjobs.models import Execution, Task
from cronjobs.supervisor.sync import sync_all
from demo import history
from tests.helpers import ROOT, database_url, wait_for
from tests.live_gunicorn import gunicorn
from tests.test_browser_admin import ARGS, ARTIFACTS, CHROMIUM, _require_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "overview-pw-1"
LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
LISTS = {
    "tasks": "/admin/cronjobs/task/",
    "history": "/admin/cronjobs/execution/",
    "alerts": "/admin/cronjobs/alert/",
}
# What each list's row must show on a phone: its status and its name.
STATUS_CELL = {
    "tasks": "td.field-health .fc-badge",
    "history": "td.field-status_badge .fc-badge",
    "alerts": "td.field-state_badge .fc-badge",
}
NAME_CELL = {
    "tasks": "th.field-name",
    "history": "td.field-task",
    "alerts": "td.field-task",
}


@pytest.fixture
def site(log_dir, django_user_model, monkeypatch):
    """gunicorn on the seeded test database, and a logged-in Chromium page factory."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    sync_all()
    history.seed(days=3)
    django_user_model.objects.create_superuser("operator", "op@example.com", PASSWORD)
    # The runjob a test starts, and gunicorn, use this test database.
    monkeypatch.setenv("DATABASE_URL", database_url())
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    monkeypatch.setenv("LOG_DIR", str(log_dir))
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop in this thread
    ARTIFACTS.mkdir(exist_ok=True)
    with gunicorn(log_dir, workers=2) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(base_url=base, viewport=LAPTOP)
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.goto("/admin/login/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#fc-overview-table")
        yield page
        context.close()
        browser.close()


# The page's and the table container's overflow, as the browser laid them out.
OVERFLOW = """(container) => {
  const box = container ? document.querySelector(container) : null;
  return {
    page: document.documentElement.scrollWidth,
    viewport: document.documentElement.clientWidth,
    box: box ? box.scrollWidth : 0,
    boxWidth: box ? box.clientWidth : 0,
  };
}"""


# The outermost elements that reach past the viewport's right edge, to name a failure.
WIDE = """() => {
  const width = document.documentElement.clientWidth;
  const past = (e) => e.getBoundingClientRect().right > width + 0.5;
  const wide = [...document.querySelectorAll("body *")].filter(
    (e) => past(e) && !(e.parentElement && past(e.parentElement)));
  return wide.slice(0, 8).map(
    (e) => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`);
}"""


def assert_no_sideways_scroll(page, container: str | None) -> None:
    found = page.evaluate(OVERFLOW, container)
    assert found["page"] <= found["viewport"], (found, page.evaluate(WIDE))
    if container:
        assert found["box"] <= found["boxWidth"], found


def in_view_horizontally(page, locator) -> bool:
    box = locator.bounding_box()
    width = page.viewport_size["width"]
    return bool(box) and box["x"] >= 0 and box["x"] + box["width"] <= width and box["width"] > 0


def test_overview_shows_every_task_and_a_failing_tasks_state(site):
    page = site
    names = set(Task.objects.filter(retired_at__isnull=True).values_list("name", flat=True))
    rows = page.locator("#fc-overview-table tbody tr")
    assert {rows.nth(i).get_attribute("data-task") for i in range(rows.count())} == names
    # The seeded open circuit: its row says critical, and why.
    failing = page.locator("#fc-overview-table tr[data-task=generate_ai_insights]")
    assert "critical" in failing.inner_text() and "circuit open" in failing.inner_text()
    assert rows.first.get_attribute("data-task") == "generate_ai_insights" or (
        "critical" in rows.first.inner_text()
    )  # worst first
    last = rows.last.bounding_box()
    assert last and last["y"] + last["height"] <= LAPTOP["height"], "not above the fold"
    assert page.locator("#fc-running").is_visible()
    assert_no_sideways_scroll(page, None)
    page.screenshot(path=str(ARTIFACTS / "overview.png"))
    # The apps: Cron jobs first, the domain's models below it.
    captions = page.locator(".fc-apps caption").all_inner_texts()
    assert captions[0].strip().lower() == "cron jobs" and "flagged" in captions[1].lower()

    page.set_viewport_size(PHONE)
    page.reload()
    assert_no_sideways_scroll(page, None)
    for i in range(rows.count()):
        assert in_view_horizontally(page, rows.nth(i).locator(".fc-health .fc-badge")), i
        assert in_view_horizontally(page, rows.nth(i).locator(".fc-task a")), i
    page.screenshot(path=str(ARTIFACTS / "overview-phone.png"))
    page.click("a.fc-dashboard-link")
    page.wait_for_selector("#fc-health")


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_lists_fit_without_sideways_scrolling(site, viewport):
    page = site
    page.set_viewport_size(viewport)
    phone = viewport is PHONE
    for name, url in LISTS.items():
        page.goto(url)
        page.wait_for_selector("#result_list tbody tr")
        suffix = "-phone" if phone else ""
        page.screenshot(path=str(ARTIFACTS / f"list-{name}{suffix}.png"), full_page=not phone)
        assert_no_sideways_scroll(page, "#changelist-form .results")
        if not phone:
            continue
        rows = page.locator("#result_list tbody tr")
        assert rows.count() > 0
        for i in range(min(rows.count(), 25)):
            row = rows.nth(i)
            assert in_view_horizontally(page, row.locator(STATUS_CELL[name]).first), (name, i)
            assert in_view_horizontally(page, row.locator(NAME_CELL[name])), (name, i)
    if phone:  # the action menus keep a usable width
        page.goto(LISTS["tasks"])
        action = page.locator("select[name=action]").bounding_box()
        snooze = page.locator("select[name=snooze]").bounding_box()
        assert action and action["width"] >= 150 and snooze and snooze["width"] >= 100


def test_task_page_and_charts_fit_a_phone(site):
    page = site
    page.set_viewport_size(PHONE)
    task = Task.objects.get(name="generate_ai_insights")
    page.goto(f"/admin/cronjobs/task/{task.pk}/change/")
    page.wait_for_selector("#fc-controls")
    assert_no_sideways_scroll(page, None)
    for button in ("run", "stop", "reset-circuit"):
        assert in_view_horizontally(page, page.locator(f"button[name={button}]"))
    page.screenshot(path=str(ARTIFACTS / "task-page-phone.png"))
    page.goto("/admin/dashboard/")
    page.wait_for_selector("#fc-chart-runs svg")
    assert_no_sideways_scroll(page, None)
    # The runs chart's labels are drawn at a readable size (issue 24 saw ~4 px).
    heights = page.evaluate(
        """() => [...document.querySelectorAll("#fc-chart-runs svg .fc-x text")]
             .map((t) => t.getBoundingClientRect().height).filter((h) => h > 0)"""
    )
    assert heights and min(heights) >= 9, heights


def test_stop_from_the_overview(site):
    page = site
    runjob = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runjob", "test_sleep"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        mine = Execution.objects.filter(task__name="test_sleep", pid=runjob.pid)
        wait_for(lambda: mine.filter(status="running").exists(), timeout=60)
        page.goto("/admin/")
        row = page.locator("#fc-running-rows tr[data-task=test_sleep]")
        row.wait_for()
        assert str(runjob.pid) in row.inner_text()
        headers = page.locator("#fc-running thead th").all_inner_texts()
        assert "attempt" in headers and "started" in headers  # words, not "ATTEMPTSTARTED"
        stamp = page.locator("#fc-running-stamp").inner_text()
        assert re.match(r"updated \d{4}-\d\d-\d\d \d\d:\d\d \S+", stamp), stamp
        page.screenshot(path=str(ARTIFACTS / "overview-running.png"))
        asked: list[str] = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        row.locator("button.fc-stop").click()
        page.wait_for_selector(".messagelist li:has-text('Stop requested for test_sleep')")
        assert asked and "Stop test_sleep" in asked[0]
        assert runjob.wait(timeout=30) == 1
    finally:
        runjob.kill()
    row = mine.get()
    assert (row.status, row.stopped_by) == ("cancelled", "operator")
    page.locator("#fc-running-rows", has_text="Nothing is running.").wait_for()
