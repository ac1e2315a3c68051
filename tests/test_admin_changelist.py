"""cronjobs/admin/changelist.py's direct inputs: the markup Django's widget templates write,
without the template engine, on every changelist with actions or list-editable fields."""

from __future__ import annotations

import re

import pytest
from django import forms
from django.contrib import admin
from django.contrib.admin.options import ModelAdmin
from django.urls import reverse

from cronjobs.admin.changelist import DirectCheckboxInput, DirectHiddenInput
from cronjobs.models import Alert, Task
from tests.helpers import make_alert, make_execution, make_task

CASES = [
    (forms.CheckboxInput, DirectCheckboxInput, {}, "enabled", True),
    (forms.CheckboxInput, DirectCheckboxInput, {}, "enabled", False),
    (
        forms.CheckboxInput,
        DirectCheckboxInput,
        {"class": "a b", "id": "id_form-0-enabled"},
        "x",
        "",
    ),
    (forms.HiddenInput, DirectHiddenInput, {"id": "id_form-0-id"}, "form-0-id", 42),
    (forms.HiddenInput, DirectHiddenInput, {}, "h", None),
    (forms.HiddenInput, DirectHiddenInput, {"data-x": "\"<&>'"}, 'n"<', 'v"<&>'),
    (forms.HiddenInput, DirectHiddenInput, {"required": True, "disabled": False}, "h", "1"),
]


@pytest.mark.parametrize(("django", "direct", "attrs", "name", "value"), CASES)
def test_direct_inputs_write_what_the_templates_write(django, direct, attrs, name, value):
    assert direct(attrs).render(name, value) == django(attrs).render(name, value)


def test_an_unchecked_test_is_kept():
    def never(value):
        return False

    checkbox = DirectCheckboxInput({"class": "action-select"}, never)
    assert checkbox.render("_selected_action", "7") == forms.CheckboxInput(
        {"class": "action-select"}, never
    ).render("_selected_action", "7")


def inputs(html: str) -> list[str]:
    """Every input but the CSRF token, which is masked afresh on each page."""
    return sorted(i for i in re.findall(r"<input[^>]*>", html) if "csrfmiddlewaretoken" not in i)


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Task, Alert])
def test_changelist_inputs_are_the_ones_django_would_write(admin_client, model, monkeypatch):
    """The whole page's inputs (action checkboxes, the enabled toggles and their hidden ids),
    compared with the same page rendered by Django's own widgets."""
    for n in range(3):
        task = make_task(f"task_{n}")
        make_execution(task, "failed", error="boom")
        make_alert(task, "failed", message=f"alert <{n}>")
    url = reverse(f"admin:cronjobs_{model._meta.model_name}_changelist")
    response = admin_client.get(url)
    fast = response.content.decode()
    if model is Task:  # the list-editable toggle and its hidden id are the direct widgets
        fields = response.context["cl"].formset.forms[0].fields
        assert isinstance(fields["enabled"].widget, DirectCheckboxInput)
        assert isinstance(fields["id"].widget, DirectHiddenInput)

    admin_class = type(admin.site._registry[model])
    monkeypatch.setattr(admin_class, "action_checkbox", ModelAdmin.action_checkbox)
    monkeypatch.setattr(admin_class, "get_changelist_formset", ModelAdmin.get_changelist_formset)
    slow = admin_client.get(url).content.decode()

    assert inputs(fast) == inputs(slow)
    assert len(inputs(fast)) > 3
