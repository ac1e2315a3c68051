"""Commands name a task exactly on every backend: MariaDB's collation would match `Heartbeat`
or `heartbeat ` to `heartbeat`, and act on a task the operator did not name."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cronjobs.models import Task
from tests.helpers import make_task

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "argv",
    [
        ["stopjob", "EXACT_ONE"],
        ["resetcircuit", "Exact_one"],
        ["snooze", "exact_one ", "--for", "30m"],
    ],
)
def test_a_name_that_differs_in_case_or_spaces_is_an_unknown_task(argv):
    make_task("exact_one")
    with pytest.raises(CommandError) as raised:
        call_command(*argv)
    assert raised.value.returncode == 2
    assert f"unknown task {argv[1]!r}" in str(raised.value)
    assert "exact_one" in str(raised.value)  # the known names, to pick from
    assert Task.objects.get(name="exact_one").snoozed_until is None  # nothing was done


def test_named_finds_only_the_exact_name():
    task = make_task("exact_two")
    assert Task.objects.named("exact_two") == task
    assert Task.objects.named("EXACT_TWO") is None
    assert Task.objects.named("exact_two ") is None
