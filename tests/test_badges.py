"""Status badges: the public SVG at a secret URL (cronjobs/views/badges.py), and the panel of
the task's page that makes a new URL or revokes it (cronjobs/admin/badges.py, through
cronjobs.actions)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.utils import timezone

from cronjobs import actions
from cronjobs.models import StatusBadge, Task
from cronjobs.views.badges import COLOURS
from tests.api_fixtures import CALLERS, client_for
from tests.helpers import make_execution, make_task, make_user

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"
COMMAND = actions.Actor.for_command("test")


def fetch(url: str, client: Client | None = None):
    return (client or Client()).get(url)


def drawn(response) -> tuple[list[str], set[str]]:
    """The texts an SVG draws, and its fill colours; it must parse as XML."""
    root = ET.fromstring(response.content)
    texts = [text.text or "" for text in root.iter(f"{SVG}text")]
    fills = {rect.get("fill", "") for rect in root.iter(f"{SVG}rect")}
    return texts, fills


@pytest.mark.parametrize(
    ("status", "enabled", "word"),
    [
        ("succeeded", True, "healthy"),
        ("failed", True, "critical"),
        (None, True, "idle"),
        ("succeeded", False, "disabled"),
    ],
)
def test_a_tasks_badge_shows_its_health_word_without_a_login(status, enabled, word):
    task = make_task("nightly", enabled=enabled)
    if status:
        make_execution(task, status)
    badge = actions.new_badge(COMMAND, task)
    response = fetch(badge.get_absolute_url())
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert response["Cache-Control"] == "no-cache, max-age=0"
    assert "default-src 'none'" in response["Content-Security-Policy"]
    texts, fills = drawn(response)
    assert texts == ["nightly", word]
    assert COLOURS[word] in fills


def test_the_badge_of_all_tasks_names_the_worst_word_and_how_many_share_it():
    Task.objects.update(retired_at=timezone.now())  # the built-in tasks: retired ones count not
    every = actions.new_badge(COMMAND, None)
    assert drawn(fetch(every.get_absolute_url()))[0] == ["cron jobs", "no tasks"]
    good, bad, worse = make_task("good"), make_task("bad"), make_task("worse")
    make_execution(good, "succeeded")
    make_execution(bad, "succeeded")
    assert drawn(fetch(every.get_absolute_url()))[0] == ["cron jobs", "healthy"]
    make_execution(bad, "failed")
    make_execution(worse, "timed_out")
    texts, fills = drawn(fetch(every.get_absolute_url()))
    assert texts == ["cron jobs", "2 critical"] and COLOURS["critical"] in fills
    Task.objects.filter(pk__in=[bad.pk, worse.pk]).update(enabled=False)
    assert drawn(fetch(every.get_absolute_url()))[0] == ["cron jobs", "healthy"]


def test_a_wrong_secret_a_revoked_badge_and_an_old_url_are_404():
    task = make_task("nightly")
    badge = actions.new_badge(COMMAND, task)
    url = badge.get_absolute_url()
    assert fetch(url).status_code == 200
    assert fetch(url.replace(badge.secret, badge.secret[:-1] + "x")).status_code == 404
    assert fetch(url.replace(badge.secret, "")).status_code == 404
    assert fetch(f"/badge/{badge.pk + 1}/{badge.secret}.svg").status_code == 404
    renewed = actions.new_badge(COMMAND, task)
    assert renewed.pk == badge.pk and renewed.secret != badge.secret
    assert fetch(url).status_code == 404
    assert fetch(renewed.get_absolute_url()).status_code == 200
    assert actions.revoke_badge(COMMAND, task) is True
    assert fetch(renewed.get_absolute_url()).status_code == 404
    assert actions.revoke_badge(COMMAND, task) is False


def test_names_are_escaped_so_the_svg_stays_xml_and_runs_nothing():
    task = make_task('<script>alert("x")</script>&\'')
    response = fetch(actions.new_badge(COMMAND, task).get_absolute_url())
    assert b"<script>" not in response.content
    assert drawn(response)[0] == ['<script>alert("x")</script>&\'', "idle"]


def test_the_badge_answers_get_and_head_only():
    url = actions.new_badge(COMMAND, make_task("nightly")).get_absolute_url()
    assert Client().head(url).status_code == 200
    assert Client().post(url).status_code == 405


@pytest.mark.parametrize("caller", CALLERS)
def test_every_caller_sees_a_badge_with_its_url_whatever_its_credentials(caller):
    url = actions.new_badge(COMMAND, make_task("nightly")).get_absolute_url()
    assert client_for(caller).get(url).status_code == 200


def test_secrets_are_long_and_different_for_every_badge():
    first = actions.new_badge(COMMAND, make_task("one"))
    second = actions.new_badge(COMMAND, None)
    assert len(first.secret) >= 32 and first.secret != second.secret


# The task page's panel and its buttons.

# Who may press the buttons: (caller, expected status of the POST, badge made).
BUTTON_MATRIX = [
    ("anonymous", 302, False),  # to the login page
    ("non_staff", 302, False),
    ("staff", 302, False),  # back to the page, with an error message
    ("viewer", 302, False),
    ("staff_writer", 302, True),
    ("read_only", 302, False),  # a token is no admin session: to the login page
    ("read_write", 302, False),
]


@pytest.mark.parametrize(("caller", "status", "made"), BUTTON_MATRIX)
def test_only_a_user_who_may_change_tasks_makes_a_badge(caller, status, made):
    task = make_task("nightly")
    client = client_for(caller)
    secret = "x" * 32
    client.cookies["csrftoken"] = secret
    response = client.post(
        f"/admin/cronjobs/task/{task.pk}/badge/",
        {"which": "task", "do": "new"},
        headers={"x-csrftoken": secret},
    )
    assert response.status_code == status
    if caller in ("anonymous", "non_staff", "read_only", "read_write"):
        assert "/admin/login/" in response["Location"]
    assert StatusBadge.objects.exists() is made


def test_a_session_post_without_its_csrf_token_changes_nothing():
    task = make_task("nightly")
    response = client_for("staff_writer").post(f"/admin/cronjobs/task/{task.pk}/badge/")
    assert response.status_code == 403
    assert not StatusBadge.objects.exists()


def test_the_buttons_make_renew_and_revoke_with_an_audit_entry(client):
    task = make_task("nightly")
    client.force_login(make_user("operator", "view_task", "change_task"))
    url = f"/admin/cronjobs/task/{task.pk}/badge/"
    page = client.post(url, {"which": "task", "do": "new"}, follow=True).content.decode()
    badge = StatusBadge.objects.get(task=task)
    assert "has a new URL" in page
    assert f"/badge/{badge.pk}/{badge.secret}.svg" in page  # shown on the task's page
    client.post(url, {"which": "all", "do": "new"})
    every = StatusBadge.objects.get(task__isnull=True)
    page = client.get(f"/admin/cronjobs/task/{task.pk}/change/").content.decode()
    assert every.secret in page and "Revoke" in page
    page = client.post(url, {"which": "task", "do": "revoke"}, follow=True).content.decode()
    assert "is revoked" in page and badge.secret not in page
    assert not StatusBadge.objects.filter(task=task).exists()
    assert list(
        LogEntry.objects.filter(object_id=str(task.pk)).values_list("change_message", flat=True)
    ) == ["Status badge revoked", "Status badge URL made"]
    assert LogEntry.objects.filter(change_message="Status badge of all tasks URL made").exists()
    assert client.get(url).status_code == 405


@pytest.mark.parametrize(
    "form",
    [{}, {"which": "task"}, {"which": "everyone", "do": "new"}, {"which": "task", "do": "x"}],
)
def test_a_form_that_is_not_the_pages_changes_nothing_and_says_so(client, form):
    task = make_task("nightly")
    client.force_login(make_user("operator", "view_task", "change_task"))
    url = f"/admin/cronjobs/task/{task.pk}/badge/"
    page = client.post(url, form, follow=True).content.decode()
    assert "not one of this page" in page
    assert not StatusBadge.objects.exists()
    assert client.post("/admin/cronjobs/task/999999/badge/", form).status_code == 404


def test_a_viewer_sees_the_badge_but_no_buttons(client):
    task = make_task("nightly")
    badge = actions.new_badge(COMMAND, task)
    client.force_login(make_user("viewer", "view_task"))
    page = client.get(f"/admin/cronjobs/task/{task.pk}/change/").content.decode()
    assert badge.secret in page and 'id="status-badges"' in page
    assert "Revoke" not in page
