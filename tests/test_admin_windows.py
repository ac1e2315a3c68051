"""Maintenance windows in the control room (cronjobs/admin/windows.py, the task list's column and
action, the dashboard): who may see, open and end them, and that every change goes through
cronjobs.actions with its audit entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from cronjobs import actions
from cronjobs.models import MaintenanceWindow
from tests.helpers import make_task, make_user

pytestmark = pytest.mark.django_db
LIST = "/admin/cronjobs/maintenancewindow/"
ADD = LIST + "add/"
TASKS = "/admin/cronjobs/task/"
VIEWER = ("view_maintenancewindow",)
OPERATOR = ("view_maintenancewindow", "change_maintenancewindow")


def _client(kind: str) -> Client:
    client = Client()
    if kind == "anonymous":
        return client
    perms = {"non_staff": (), "staff": (), "viewer": VIEWER, "operator": OPERATOR}[kind]
    client.force_login(make_user(kind, *perms, staff=kind != "non_staff"))
    return client


def _open(tasks: str = "tills", mode: str = "skip", reason: str = "stock take"):
    until = datetime.now(UTC) + timedelta(hours=2)
    return actions.open_window(
        actions.Actor.for_command("test"), tasks.split(","), mode, reason, until
    )


@pytest.mark.parametrize(
    ("kind", "listing", "adding"),
    [
        ("anonymous", 302, 302),
        ("non_staff", 302, 302),
        ("staff", 403, 403),
        ("viewer", 200, 403),
        ("operator", 200, 200),
    ],
)
def test_who_sees_the_window_list_and_the_add_form(kind, listing, adding):
    make_task("tills")
    _open()
    client = _client(kind)
    response = client.get(LIST)
    assert response.status_code == listing
    if listing == 200:
        page = response.content.decode()
        assert "stock take" in page and "on until" in page
        assert ("End the selected windows now" in page) is (kind == "operator")
    assert client.get(ADD).status_code == adding


@pytest.mark.parametrize(
    ("kind", "ended"), [("staff", False), ("viewer", False), ("operator", True)]
)
def test_only_the_change_permission_ends_a_window(kind, ended):
    make_task("tills")
    window = _open()
    client = _client(kind)
    client.post(LIST, {"action": "end_now", "_selected_action": [window.pk]})
    window.refresh_from_db()
    assert (window.ends_at <= datetime.now(UTC)) is ended


def test_the_add_form_opens_a_window_through_the_action_with_one_audit_entry():
    make_task("tills")
    client = _client("operator")
    data = {"tasks": "tills", "mode": "mute", "reason": "router swap", "length": "4h", "until": ""}
    response = client.post(ADD, data, follow=True)
    assert response.status_code == 200
    window = MaintenanceWindow.objects.get()
    assert (window.tasks, window.mode, window.created_by) == ("tills", "mute", "operator")
    assert timedelta(hours=3, minutes=59) < window.ends_at - window.starts_at <= timedelta(hours=4)
    entries = LogEntry.objects.filter(content_type__model="maintenancewindow")
    assert [e.change_message for e in entries] == [
        f"Maintenance window #{window.pk} (mute) until "
        f"{window.ends_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC: router swap"
    ]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"tasks": "nope", "length": "2h"}, "unknown task &#x27;nope&#x27;"),
        ({"tasks": "tills", "length": "custom", "until": ""}, "give either how long"),
        ({"tasks": "tills", "length": "custom", "until": "2020-01-01 00:00"}, "not in the future"),
        ({"tasks": "tills", "length": "custom", "until": "soon"}, "not an ISO 8601"),
    ],
)
def test_the_add_form_shows_what_is_wrong_and_opens_nothing(data, problem):
    make_task("tills")
    response = _client("operator").post(ADD, {"mode": "skip", "reason": "x", **data})
    assert response.status_code == 200  # the form again, with the error
    assert problem in response.content.decode()
    assert not MaintenanceWindow.objects.exists()


def test_task_list_shows_the_window_and_its_reason_and_opens_one_by_action():
    tills, other = make_task("tills"), make_task("other")
    client = _client("operator")
    client.force_login(make_user("lead", "view_task", "change_task", *OPERATOR))
    data = {
        "action": "open_window",
        "_selected_action": [tills.pk, other.pk],
        "window": "2h",
        "window_mode": "skip",
        "window_reason": "stock take",
    }
    page = client.post(TASKS, data, follow=True).content.decode()
    assert "Maintenance window #" in page and "for other, tills" in page
    assert MaintenanceWindow.objects.get().tasks == "other,tills"
    listing = client.get(TASKS).content.decode()
    assert listing.count("stock take") == 2 and "fc-maintenance" in listing


def test_task_action_without_the_window_permission_or_a_reason_opens_nothing():
    tills = make_task("tills")
    client = Client()
    client.force_login(make_user("taskonly", "view_task", "change_task"))
    data = {"action": "open_window", "_selected_action": [tills.pk], "window": "2h",
            "window_mode": "skip", "window_reason": "x"}  # fmt: skip
    page = client.post(TASKS, data, follow=True).content.decode()
    assert "No window opened: permission cronjobs.change_maintenancewindow required" in page
    client.force_login(make_user("lead", "view_task", "change_task", *OPERATOR))
    page = client.post(TASKS, {**data, "window_reason": " "}, follow=True).content.decode()
    assert "No window opened: give a reason" in page
    assert not MaintenanceWindow.objects.exists()


def test_dashboard_shows_the_windows_on_now_and_each_tasks_window():
    make_task("tills")
    _open(mode="mute", reason="till count")
    client = Client()
    client.force_login(make_user("watcher", "view_execution", "view_task", "view_alert"))
    page = client.get("/admin/dashboard/?partial=1").content.decode()
    assert "Maintenance windows on now" in page and "till count" in page
    assert page.count("till count") >= 2  # the panel and the task's health row


def test_overview_shows_the_window_a_task_is_in_and_its_reason():
    make_task("tills")
    make_task("other")
    _open(mode="skip", reason="stock take in the back room")
    client = Client()
    client.force_login(make_user("watcher", "view_task"))
    page = client.get("/admin/").content.decode()
    tills = page[page.index('data-task="tills"') :][:2000]
    assert "stock take in the back room" in tills and "maintenance" in tills
    other = page[page.index('data-task="other"') :]
    assert "stock take" not in other[: other.index("</tr>")]
