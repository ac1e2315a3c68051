"""Login throttling (django-axes, cronjobs/logins.py) through gunicorn: after AXES_FAILURE_LIMIT
wrong passwords the right one is refused too, until `manage.py unlock` lifts the lockout; behind
a proxy the client is its real address, whatever it puts in X-Forwarded-For; a lockout is of a
(username, address) pair or of an address failing across usernames, never of a username for
everyone; a success forgets its own pair's failures only."""

from __future__ import annotations

import http.cookiejar
import os
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command

from cronjobs.logins import client_address
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


# The login policy (cronjobs/logins.py) through gunicorn behind one proxy, as nginx forwards:
# X-Forwarded-For is what the client sent, then the address nginx saw it connect from.
REAL_ATTACKER, ADMIN_HOME, OFFICE = "203.0.113.9", "198.51.100.7", "192.0.2.44"


class Browser:
    """One client of the admin login (its own cookies) behind nginx at `address`."""

    def __init__(self, base: str, address: str) -> None:
        self.base, self.address = base, address
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def log_in(self, username: str, password: str, spoof: str = "") -> int:
        """The status of the login POST: 302 logged in, 200 refused, 429 locked out."""
        forwarded = f"{spoof}, {self.address}" if spoof else self.address
        headers = {"X-Forwarded-For": forwarded}
        page = self._open(f"{self.base}/admin/login/", headers)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.read())
        assert token is not None
        form = {
            "csrfmiddlewaretoken": token.group(1).decode(),
            "username": username,
            "password": password,
            "next": "/admin/",
        }
        answer = self._open(
            f"{self.base}/admin/login/?next=/admin/",
            {**headers, "Referer": f"{self.base}/admin/login/"},
            urllib.parse.urlencode(form).encode(),
        )
        return answer.status

    def _open(self, url: str, headers: dict[str, str], data: bytes | None = None):
        try:
            return self.opener.open(urllib.request.Request(url, data, headers), timeout=60)
        except urllib.error.HTTPError as exc:
            return exc


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def behind_nginx(log_dir, django_user_model):
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    django_user_model.objects.create_user("mallory", password="mallory-pw-1", is_staff=True)
    env = {"FORWARDED_PROXY_COUNT": "1", "AXES_FAILURE_LIMIT": "5"}
    with gunicorn(log_dir, workers=1, AXES_ADDRESS_FAILURE_LIMIT="8", **env) as base:
        yield base


def test_rotating_the_spoofed_part_cannot_escape_a_lockout_nor_lock_out_admin_elsewhere(
    behind_nginx,
):
    attacker = Browser(behind_nginx, REAL_ATTACKER)
    statuses = [attacker.log_in("admin", "guess", spoof=f"10.0.0.{i}") for i in range(5)]
    assert statuses == [200] * 4 + [429]  # the fifth failure locks the pair
    assert attacker.log_in("admin", PASSWORD, spoof="10.9.9.9") == 429
    assert attacker.log_in("admin", PASSWORD) == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {REAL_ATTACKER}
    # The username is not locked for everyone: admin from home logs in.
    assert Browser(behind_nginx, ADMIN_HOME).log_in("admin", PASSWORD) == 302


def test_an_address_failing_across_many_usernames_is_locked_out(behind_nginx):
    attacker = Browser(behind_nginx, REAL_ATTACKER)
    statuses = [attacker.log_in(f"user{i}", "guess", spoof=f"10.0.0.{i}") for i in range(8)]
    assert statuses[:7] == [200] * 7 and statuses[7] == 429
    assert attacker.log_in("admin", PASSWORD) == 429  # a new pair, from the same address
    assert Browser(behind_nginx, ADMIN_HOME).log_in("admin", PASSWORD) == 302
    call_command("unlock", "--ip", REAL_ATTACKER)
    assert attacker.log_in("admin", PASSWORD) == 302


def test_ones_own_successful_login_does_not_reset_another_pairs_failures(behind_nginx):
    """Four guesses for admin, then a login to one's own account, from one shared address:
    the fifth guess still locks admin out from there."""
    office = Browser(behind_nginx, OFFICE)
    assert [office.log_in("admin", "guess") for _ in range(4)] == [200] * 4
    assert Browser(behind_nginx, OFFICE).log_in("mallory", "mallory-pw-1") == 302
    assert office.log_in("admin", "guess") == 429
    assert office.log_in("admin", PASSWORD) == 429
    # A success resets its own pair: mallory's earlier failure is forgotten.
    mallory = Browser(behind_nginx, ADMIN_HOME)
    assert mallory.log_in("mallory", "typo") == 200
    assert mallory.log_in("mallory", "mallory-pw-1") == 302
    assert not AccessAttempt.objects.filter(username="mallory").exists()


@pytest.mark.parametrize(
    ("forwarded", "remote", "hops", "client"),
    [
        (None, "127.0.0.1", 1, "127.0.0.1"),  # straight to gunicorn: the connecting address
        ("203.0.113.9", "127.0.0.1", 1, "203.0.113.9"),
        ("1.2.3.4, 5.6.7.8, 203.0.113.9", "127.0.0.1", 1, "203.0.113.9"),
        ("1.2.3.4, 203.0.113.9, 10.0.0.2", "127.0.0.1", 2, "203.0.113.9"),
        ("203.0.113.9, 10.0.0.2", "127.0.0.1", 0, "127.0.0.1"),  # no proxy trusted
        ("garbage", "127.0.0.1", 1, "127.0.0.1"),
        ("2001:DB8::1", "::1", 1, "2001:db8::1"),
    ],
)
def test_the_client_is_the_address_that_many_hops_from_the_right(
    rf, settings, forwarded, remote, hops, client
):
    settings.FORWARDED_PROXY_COUNT = hops
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_address(rf.get("/admin/login/", **meta)) == client


def test_sessions_last_twelve_hours_by_default():
    from django.conf import settings

    assert settings.SESSION_COOKIE_AGE == 12 * 3600
