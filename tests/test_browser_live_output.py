"""Live output in a real browser through gunicorn: the page of a running attempt grows as the
job prints, without a reload, and says when the attempt has ended."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from cronjobs.models import Execution
from tests.helpers import wait_for
from tests.live_gunicorn import gunicorn
from tests.test_browser_admin import ARGS, CHROMIUM, _require_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "live-output-pw-1"
TASKS = """
[tasks.chatty]
command = [
    "sh",
    "-c",
    "i=0; until [ -e $FC_TEST_DIR/enough ]; do i=$((i+1)); echo tick $i; sleep 0.3; done; echo end",
]
pass_env = ["FC_TEST_DIR"]
timeout = 120
max_attempts = 1
"""


def test_a_running_attempts_page_grows_without_reload_and_stops_at_the_end(
    manage, tmp_path, log_dir, job_dir, monkeypatch, django_user_model
):
    _require_browser()
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop in this thread
    django_user_model.objects.create_superuser("operator", "op@example.com", PASSWORD)
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(TASKS)
    runjob = subprocess.Popen(
        manage.argv("runjob", "chatty", "--trigger", "cron"),
        env=manage.env({"CRONJOBS_TASKS_FILE": str(tasks), "CRONJOBS_HOST": "worker-2"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with gunicorn(log_dir, workers=2) as base, sync_playwright() as playwright:
            row = wait_for(lambda: Execution.objects.filter(task__name="chatty").first())
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(base_url=base)
            page.set_default_timeout(30_000)
            page.goto("/admin/login/")
            page.fill("#id_username", "operator")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.goto(f"/admin/cronjobs/execution/{row.pk}/change/")
            page.evaluate("window.fcSamePage = true")  # gone if the page reloads
            shown = page.inner_text("#fc-live-output")
            wait_until(
                page,
                "n => document.getElementById('fc-live-output').textContent.length > n + 20",
                len(shown),
            )
            (job_dir / "enough").touch()  # the job ends after its current tick
            wait_until(
                page, "() => document.getElementById('fc-live-note').dataset.state === 'ended'"
            )
            text = page.inner_text("#fc-live-output")
            assert page.evaluate("window.fcSamePage") is True
            lines = [line for line in text.splitlines() if line]
            assert lines == [f"tick {i}" for i in range(1, len(lines))] + ["end"]
            assert "ended: succeeded" in page.inner_text("#fc-live-note")
            browser.close()
        assert runjob.wait(timeout=30) == 0
    finally:
        runjob.kill()
        runjob.wait()


def wait_until(page: Any, predicate: str, arg: Any = None, timeout: float = 30.0) -> None:
    """Poll `predicate` through page.evaluate. Playwright's wait_for_function compiles its
    predicate inside the page, which the Content-Security-Policy (no eval) refuses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate, arg):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {predicate}"
        time.sleep(0.1)
