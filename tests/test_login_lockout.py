"""Login throttling (django-axes) in a real browser through gunicorn: after AXES_FAILURE_LIMIT
wrong passwords the right one is refused too, until `manage.py unlock` lifts the lockout."""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command

from tests.live_gunicorn import gunicorn
from tests.test_browser_admin import ARGS, CHROMIUM, _require_browser

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "lockout-pw-1"


def _log_in(page, base: str, password: str) -> str:
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_load_state()
    return page.content()


def test_lockout_refuses_the_right_password_until_unlocked(log_dir, django_user_model):
    _require_browser()
    from playwright.sync_api import sync_playwright

    django_user_model.objects.create_superuser("operator", "op@example.com", PASSWORD)
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop in this thread
    with gunicorn(log_dir, AXES_FAILURE_LIMIT="3") as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page()
        page.set_default_timeout(60_000)
        for _ in range(2):
            assert "Please enter the correct username" in _log_in(page, base, "wrong")
        assert "too many login attempts" in _log_in(page, base, "wrong")  # the third
        locked = _log_in(page, base, PASSWORD)
        assert "locked" in locked.lower()
        assert "/admin/login/" in page.url

        call_command("unlock", "operator", "--ip", "127.0.0.1")
        _log_in(page, base, PASSWORD)
        assert page.url.rstrip("/").endswith("/admin")
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


def test_unlock_needs_a_target():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="or give --all alone"):
        call_command("unlock")
    with pytest.raises(CommandError):
        call_command("unlock", "alice", "--all")
