"""Template helpers for the control room: status badges and the calendar date hierarchy."""

from __future__ import annotations

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.contrib.admin.views.main import ChangeList
from django.template.base import Parser, Token
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from cronjobs.admin import display
from cronjobs.admin.changelist import calendar_date_hierarchy

register = template.Library()
# A success rate on the dashboard reads as it does on the task list.
register.filter("percent", display.percent)
# Every moment a template writes reads as the admin's columns do: '2026-12-06 21:31 UTC'.
register.filter("when", display.when)


@register.simple_tag
def badge(value: str | None, label: str | None = None) -> SafeString:
    """A coloured pill for a status, circuit or alert state; the colour comes from admin.css."""
    if not value:
        return format_html('<span class="fc-badge fc-none">{}</span>', label or "never")
    return format_html(
        '<span class="fc-badge fc-{}">{}</span>', value, label or value.replace("_", " ")
    )


@register.simple_tag
def time_zone_name() -> str:
    """The project's time zone, for scripts that write moments as the pages do."""
    return timezone.get_current_timezone_name()


@register.tag(name="calendar_date_hierarchy")
def calendar_date_hierarchy_tag(parser: Parser, token: Token) -> InclusionAdminNode:
    return InclusionAdminNode(
        parser,
        token,
        func=calendar_date_hierarchy,
        template_name="date_hierarchy.html",
        takes_context=False,
    )


@register.simple_tag
def page_url(cl: ChangeList, number: int) -> str:
    """The changelist's current query string with another page number."""
    return cl.get_query_string({"p": number})


@register.filter
def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


@register.filter
def mib(size: int | None) -> str:
    return "-" if not size else f"{size / 1024 / 1024:.0f} MiB"
