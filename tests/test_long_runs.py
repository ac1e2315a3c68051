"""The supervisor's connection outlives MySQL's wait_timeout (docs/operations.md, "Long runs")."""

from __future__ import annotations

import pytest
from django.db import connection

from cronjobs.models import Execution
from cronjobs.supervisor.registry import build_spec
from cronjobs.supervisor.runner import run_task

pytestmark = [pytest.mark.mariadb, pytest.mark.django_db(transaction=True)]


def _thread_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        return cursor.fetchone()[0]


def test_job_longer_than_wait_timeout_is_still_recorded(settings):
    settings.CRONJOBS_LEASE_TTL = 600  # no renewal during the job: the connection sits idle
    spec = build_spec("long_job", "command", ("sleep", "4"), {"timeout": 30}, "test")
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION wait_timeout = 2")
    before = _thread_id()
    outcome = run_task(spec)
    assert outcome.exit_code == 0
    row = Execution.objects.get(run_id=outcome.run_id)
    assert row.status == Execution.Status.SUCCEEDED
    assert row.duration >= 4
    assert _thread_id() != before  # the server had closed the idle session; we reconnected
