"""What keeps the execution history changelist fast on millions of rows.

Django's admin costs two full scans per page on a big table: `paginator.count` is a COUNT(*)
of every matching row, and the date hierarchy lists the periods that have rows with a
SELECT DISTINCT over every matching row (wrapped in CONVERT_TZ on MySQL, which returns NULL
when the server has no time zone tables). Here the paginator reads at most one row past the
current page, and the date hierarchy derives its periods from the calendar between the first
and the last matching row, which are two index lookups.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.core.paginator import Paginator
from django.db.models import Max, Min
from django.utils import timezone
from django.utils.functional import cached_property


class LookaheadPaginator(Paginator):
    """Counts only as far as the next page: `count` is the rows before this page plus those on
    it, plus one if any row follows, so the admin shows a link to the next page and nothing
    ever counts the whole table."""

    def __init__(self, object_list, per_page: int, page_number: int = 1, **kwargs: Any):
        super().__init__(object_list, per_page, **kwargs)
        self.page_number = max(page_number, 1)

    @cached_property
    def count(self) -> int:
        offset = (self.page_number - 1) * self.per_page
        window = self.object_list.values_list("pk", flat=True)[offset : offset + self.per_page + 1]
        return offset + len(list(window))

    @property
    def has_more(self) -> bool:
        return self.count > self.page_number * self.per_page


def page_number(request, default: int = 1) -> int:
    """The changelist's page number from ?p=, as the admin reads it."""
    try:
        return int(request.GET.get("p", default))
    except ValueError:
        return default


def calendar_periods(first: dt.datetime, last: dt.datetime, kind: str) -> list[dt.datetime]:
    """Every year, month or day from `first` to `last` (local datetimes), oldest first."""
    if kind == "year":
        return [first.replace(year=y, month=1, day=1) for y in range(first.year, last.year + 1)]
    if kind == "month":
        months = range(first.year * 12 + first.month - 1, last.year * 12 + last.month)
        return [first.replace(year=m // 12, month=m % 12 + 1, day=1) for m in months]
    days = (last.date() - first.date()).days
    return [first + dt.timedelta(days=k) for k in range(days + 1)]


class _CalendarQuerySet:
    """Stands in for the changelist queryset inside Django's date_hierarchy: aggregates go to
    the database, the list of periods comes from calendar_periods."""

    def __init__(self, queryset):
        self.queryset = queryset

    def aggregate(self, **kwargs: Any) -> dict[str, Any]:
        return self.queryset.aggregate(**kwargs)

    def datetimes(self, field: str, kind: str) -> list[dt.datetime]:
        span = self.queryset.aggregate(first=Min(field), last=Max(field))
        if span["first"] is None:
            return []
        return calendar_periods(
            timezone.localtime(span["first"]), timezone.localtime(span["last"]), kind
        )

    dates = datetimes


class _CalendarChangeList:
    def __init__(self, cl):
        self._cl = cl
        self.queryset = _CalendarQuerySet(cl.queryset)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cl, name)


def calendar_date_hierarchy(cl) -> dict[str, Any] | None:
    """Django's date_hierarchy context, with periods from the calendar (see the module doc)."""
    return date_hierarchy(_CalendarChangeList(cl))
