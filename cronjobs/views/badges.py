"""Status badges (docs/admin.md, "Status badges"): an SVG of a task's health word, or of every
task's, at a secret URL for wiki pages and wall dashboards, as Healthchecks offers.

The URL is `/badge/<id>/<secret>.svg`; it needs no login (whoever has the URL may see one word
of health), so the secret is the only key: compared in constant time, a wrong or revoked one
answers 404, and the operator makes a new one or revokes it from the task's page
(cronjobs.actions.new_badge, revoke_badge). The names drawn are escaped: an SVG is XML, and a
browser opening it directly would run a script in it.
"""

from __future__ import annotations

import hmac
from typing import NamedTuple

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.html import escape
from django.views.decorators.http import require_safe

from cronjobs.models import StatusBadge, Task
from cronjobs.reporting.health import task_health

# The health words' colours (shields.io's palette); the words are reporting.health's.
COLOURS = {
    "healthy": "#44cc11",
    "warning": "#dfb317",
    "critical": "#e05d44",
    "idle": "#9f9f9f",
    "disabled": "#9f9f9f",
    "retired": "#9f9f9f",
}
# Worst first: the badge of all tasks names the worst word any current task has.
WORST_FIRST = ("critical", "warning", "healthy", "idle", "disabled")
ALL_TASKS_LABEL = "cron jobs"


class BadgeState(NamedTuple):
    label: str
    message: str
    colour: str


@require_safe
def badge_view(request: HttpRequest, badge_id: int, secret: str) -> HttpResponse:
    badge = StatusBadge.objects.select_related("task").filter(pk=badge_id).first()
    if badge is None or not hmac.compare_digest(badge.secret.encode(), secret.encode()):
        raise Http404("no such badge")
    response = HttpResponse(svg(state(badge.task)), content_type="image/svg+xml; charset=utf-8")
    response["Cache-Control"] = "no-cache, max-age=0"  # a wall screen shows the state now
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def state(task: Task | None) -> BadgeState:
    """One task's health word, or for every current task the worst word with how many share
    it ("2 critical"), "healthy" when none needs a look."""
    if task is not None:
        word = task_health([task], with_month=False)[task.pk].status
        return BadgeState(task.name, word, COLOURS[word])
    tasks = list(Task.objects.filter(retired_at__isnull=True))
    words = [health.status for health in task_health(tasks, with_month=False).values()]
    if not words:
        return BadgeState(ALL_TASKS_LABEL, "no tasks", COLOURS["idle"])
    worst = min(words, key=WORST_FIRST.index)
    message = f"{words.count(worst)} {worst}" if worst in ("critical", "warning") else worst
    return BadgeState(ALL_TASKS_LABEL, message, COLOURS[worst])


def _width(text: str) -> int:
    """About how wide Verdana 11 px draws `text`, with 5 px on each side."""
    return 10 + round(sum(4.5 if ch in "ilj.,:;'| " else 7.2 for ch in text))


def svg(badge: BadgeState) -> str:
    left, right = _width(badge.label), _width(badge.message)
    label, message = escape(badge.label), escape(badge.message)
    width = left + right
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img"'
        f' aria-label="{label}: {message}"><title>{label}: {message}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb"'
        ' stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{badge.colour}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif"'
        ' font-size="11">'
        f'<text x="{left / 2:g}" y="14">{label}</text>'
        f'<text x="{left + right / 2:g}" y="14">{message}</text></g></svg>'
    )
