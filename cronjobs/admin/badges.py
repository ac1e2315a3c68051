"""The status badges' panel on a task's page: this task's badge and the badge of all tasks,
each with its secret URL, its image, and buttons to make a new URL or revoke it. The buttons
post here; the change goes through cronjobs.actions (permission, audit); the badge itself is
served by cronjobs/views/badges.py."""

from __future__ import annotations

from typing import TypedDict

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse

from cronjobs import actions
from cronjobs.models import StatusBadge, Task


class BadgeRow(TypedDict):
    which: str  # "task" or "all"
    title: str
    url: str | None  # absolute, as a wiki page links it; None when there is no badge


def panel(request: HttpRequest, task: Task) -> list[BadgeRow]:
    """What the task's page shows: this task's badge, then the badge of all tasks."""
    badges = {badge.task_id: badge for badge in StatusBadge.objects.filter(task__in=[task])}
    every = StatusBadge.objects.filter(task__isnull=True).first()
    return [
        _row(request, "task", f"{task.name}", badges.get(task.pk)),
        _row(request, "all", "all tasks", every),
    ]


def _row(request: HttpRequest, which: str, title: str, badge: StatusBadge | None) -> BadgeRow:
    url = request.build_absolute_uri(badge.get_absolute_url()) if badge else None
    return {"which": which, "title": title, "url": url}


def change_badge(request: HttpRequest, object_id: str) -> HttpResponse:
    """POST `which` (task or all) and `do` (new or revoke), from the task's page."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    task = get_object_or_404(Task, pk=object_id)
    page = HttpResponseRedirect(reverse("admin:cronjobs_task_change", args=[task.pk]))
    which, do = request.POST.get("which"), request.POST.get("do")
    if which not in ("task", "all") or do not in ("new", "revoke"):
        messages.error(request, "Status badge not changed: the form was not one of this page's.")
        return page
    target = task if which == "task" else None
    whose = f"of {task.name}" if target else "of all tasks"
    actor = actions.Actor.from_request(request)
    try:
        if do == "revoke":
            done = actions.revoke_badge(actor, target)
            said = f"The status badge {whose} is revoked: its URL answers 404 now."
            if not done:
                said = f"There was no status badge {whose} to revoke."
        else:
            actions.new_badge(actor, target)
            said = f"The status badge {whose} has a new URL; the old one, if any, answers 404."
    except actions.ActionError as exc:
        messages.error(request, f"Status badge {whose} not changed: {exc.message}.")
    else:
        messages.success(request, said)
    return page
