"""Wrapping PHP for real: the shipped examples/cronjobs.toml and its scripts run under
`manage.py runjob` with Debian's php-cli. Mandatory with CI=true (bin/system-deps test installs
php-cli); skipped with a message elsewhere when php is missing."""

from __future__ import annotations

import os
import shutil

import pytest

from cronjobs.models import Execution
from tests.helpers import ROOT

EXAMPLES = ROOT / "examples" / "cronjobs.toml"
PHP_MISSING = "php-cli is not installed (bin/system-deps test installs it)"
MIB = 2**20


@pytest.fixture(autouse=True)
def require_php():
    if shutil.which("php"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {PHP_MISSING}")
    pytest.skip(PHP_MISSING)


@pytest.fixture
def runjob(manage):
    def run(task: str):
        result = manage("runjob", task, env_extra={"CRONJOBS_TASKS_FILE": str(EXAMPLES)})
        rows = list(Execution.objects.filter(task__name=task).order_by("attempt"))
        return result, rows

    return run


pytestmark = pytest.mark.django_db(transaction=True)


def test_a_php_script_that_succeeds_records_its_own_memory(runjob):
    result, rows = runjob("stock_sync")
    assert result.returncode == 0, result.stderr
    (row,) = rows
    assert (row.status, row.exit_code, row.error) == ("succeeded", 0, "")
    assert "stock_sync: 10000 products, 79974 units" in row.output
    # The script's own peak (php-cli is about 20 MiB), not the supervisor's interpreter.
    assert 4 * MIB < row.peak_rss_bytes < 32 * MIB
    assert row.memory_added_bytes is None and row.job_memory_bytes == row.peak_rss_bytes


def test_a_php_fatal_error_fails_with_the_php_message_and_is_retried(runjob):
    result, rows = runjob("broken_report")
    assert result.returncode == 1
    assert [(r.attempt, r.status, r.exit_code) for r in rows] == [
        (1, "failed", 255),
        (2, "failed", 255),
    ]
    message = "PHP Fatal error:  Uncaught Error: Call to undefined function build_the_report()"
    assert message in rows[-1].output
    assert "broken_report: starting" in rows[-1].output
    assert rows[-1].error.startswith(f"exited with status 255: {message}")


def test_a_php_script_past_its_timeout_is_killed(runjob):
    result, rows = runjob("slow_export")
    assert result.returncode == 1
    (row,) = rows
    assert row.status == "timed_out"
    assert row.error == "timed out after 5 s"
    assert 5 <= row.duration < 15
    assert "slow_export: waiting for the remote API" in row.output


def test_a_php_script_over_the_tasks_memory_limit_is_stopped_and_not_retried(runjob):
    result, rows = runjob("memory_hog")
    assert result.returncode == 1
    (row,) = rows  # memory_exceeded is not retried: the next attempt would do the same
    assert row.status == "memory_exceeded"
    assert row.error.startswith(f"memory limit of {64 * MIB} bytes exceeded")
    assert row.peak_rss_bytes > 64 * MIB
    assert row.duration < 30


def test_a_php_script_that_writes_to_stderr_only(runjob):
    result, rows = runjob("quiet_warning")
    assert result.returncode == 0, result.stderr
    (row,) = rows
    assert row.status == "succeeded" and row.error == ""
    assert row.output.strip() == "quiet_warning: 3 outlets had no sales feed today"
