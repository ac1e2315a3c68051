"""What keeps the changelists fast: the execution history on millions of rows, and a page of
a hundred rows of anything.

Django's admin costs two full scans per page on a big table: `paginator.count` is a COUNT(*)
of every matching row, and the date hierarchy lists the periods that have rows with a
SELECT DISTINCT over every matching row (wrapped in CONVERT_TZ on MySQL, which returns NULL
when the server has no time zone tables). Here the paginator reads at most one row past the
current page, and the date hierarchy derives its periods from the calendar between the first
and the last matching row, which are two short index walks.

A page of a hundred rows also renders three hundred small inputs (the action checkbox, the
list-editable toggle and its hidden id), and Django renders each through three nested
templates: about a third of the task list's time. FastInputsMixin writes those inputs
directly, with the markup the templates would write.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, TypeVar

from django import forms
from django.contrib.admin import helpers
from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.forms.models import BaseModelFormSet, ModelForm
from django.forms.renderers import BaseRenderer
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

# Far beyond any real history (100 rows a page): a page past the last is "no such page".
MAX_PAGE = 10**7
_M = TypeVar("_M", bound=Model)


class LookaheadPaginator(Paginator[_M]):
    """Counts only as far as the next page: `count` is the rows before this page plus those on
    it, plus one if any row follows, so the admin shows a link to the next page and nothing
    ever counts the whole table."""

    object_list: QuerySet[_M]

    def __init__(
        self, object_list: QuerySet[_M], per_page: int, page_number: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(object_list, per_page, **kwargs)
        # Clamped: ?p=99999999999999999999 would overflow the database's OFFSET.
        self.page_number = min(max(page_number, 1), MAX_PAGE)

    @cached_property
    def count(self) -> int:
        offset = (self.page_number - 1) * self.per_page
        window = self.object_list.values_list("pk", flat=True)[offset : offset + self.per_page + 1]
        return offset + len(list(window))

    @property
    def has_more(self) -> bool:
        return self.count > self.page_number * self.per_page


def page_number(request: HttpRequest, default: int = 1) -> int:
    """The changelist's page number from ?p=, as the admin reads it."""
    raw = request.GET.get("p", "")
    if not (raw.isascii() and raw.isdigit()):
        return default
    # Bounded by length before int(): Python refuses to convert over 4,300 digits.
    return MAX_PAGE if len(raw) > len(str(MAX_PAGE)) else min(int(raw), MAX_PAGE)


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
    """Stands in for the changelist queryset inside Django's date_hierarchy. The first and the
    last row come from two ordered LIMIT 1 queries instead of MIN/MAX: walking the started_at
    index stops at the first match, where MIN/MAX over a search (LIKE '%term%') reads every
    matching row. The list of periods comes from calendar_periods."""

    def __init__(self, queryset: QuerySet[Model], field: str) -> None:
        self.queryset = queryset.order_by()
        self.field = field

    @cached_property
    def span(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        values = self.queryset.values_list(self.field, flat=True)
        first = values.order_by(self.field).first()
        last = values.order_by(f"-{self.field}").first() if first else None
        return first, last

    def aggregate(self, **kwargs: Any) -> dict[str, Any]:
        # Django asks for exactly first=Min(field), last=Max(field).
        first, last = self.span
        return {"first": first, "last": last}

    def datetimes(self, field: str, kind: str) -> list[dt.datetime]:
        first, last = self.span
        if first is None:
            return []
        return calendar_periods(timezone.localtime(first), timezone.localtime(last), kind)

    dates = datetimes


class _CalendarChangeList:
    def __init__(self, cl: ChangeList) -> None:
        self._cl = cl
        self.queryset = _CalendarQuerySet(cl.queryset, cl.date_hierarchy)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cl, name)


def calendar_date_hierarchy(cl: ChangeList) -> dict[str, Any] | None:
    """Django's date_hierarchy context, with periods from the calendar (see the module doc)."""
    # The wrapper answers every attribute date_hierarchy reads, as a ChangeList would.
    return date_hierarchy(_CalendarChangeList(cl))  # type: ignore[arg-type]


class DirectInput(forms.Widget):
    """An <input> widget rendered without the template engine, as Django's
    django/forms/widgets/input.html (and attrs.html) would render it."""

    def render(
        self,
        name: str,
        value: Any,
        attrs: dict[str, Any] | None = None,
        renderer: BaseRenderer | None = None,
    ) -> SafeString:
        widget = self.get_context(name, value, attrs)["widget"]
        html = [f'<input type="{escape(widget["type"])}" name="{escape(widget["name"])}"']
        if widget["value"] is not None:
            html.append(f' value="{escape(widget["value"])}"')
        for key, attr in widget["attrs"].items():
            if attr is True:
                html.append(f" {key}")
            elif attr is not False:
                html.append(f' {key}="{escape(attr)}"')
        return mark_safe("".join(html) + ">")  # every value above is escaped


class DirectCheckboxInput(DirectInput, forms.CheckboxInput):
    pass


class DirectHiddenInput(DirectInput, forms.HiddenInput):
    pass


def _direct(widget: forms.Widget) -> forms.Widget:
    """The direct twin of a plain checkbox or hidden input (its subclasses keep their
    templates)."""
    if type(widget) is forms.CheckboxInput:
        return DirectCheckboxInput(widget.attrs, widget.check_test)
    if type(widget) is forms.HiddenInput:
        return DirectHiddenInput(widget.attrs)
    return widget


class DirectInputFormSet(BaseModelFormSet[Model, ModelForm[Model]]):
    """The list-editable formset, its checkboxes and hidden ids rendered directly."""

    def add_fields(self, form: ModelForm[Model], index: int | None) -> None:
        super().add_fields(form, index)
        for field in form.fields.values():
            field.widget = _direct(field.widget)


class FastInputsMixin(Generic[_M]):
    """For a ModelAdmin: the action checkbox and the list-editable inputs rendered directly."""

    def action_checkbox(self, obj: _M) -> SafeString:
        # As ModelAdmin.action_checkbox (its header is drawn by name), with a direct checkbox.
        label = format_html(gettext("Select this object for an action - {}"), str(obj))
        checkbox = DirectCheckboxInput(
            {"class": "action-select", "aria-label": label}, lambda value: False
        )
        return checkbox.render(helpers.ACTION_CHECKBOX_NAME, str(obj.pk))

    def get_changelist_formset(
        self, request: HttpRequest, **kwargs: Any
    ) -> type[BaseModelFormSet[_M, ModelForm[_M]]]:
        # A mixin: the ModelAdmin after it in the admin's bases has the method.
        return super().get_changelist_formset(  # type: ignore[misc,no-any-return]
            request, formset=DirectInputFormSet, **kwargs
        )
