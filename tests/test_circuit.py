"""The circuit breaker (cronjobs/supervisor/circuit.py): time is travelled, never slept."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cronjobs.models import Alert, CircuitState, Execution
from cronjobs.supervisor import circuit
from cronjobs.supervisor.runner import run_task
from tests.helpers import make_execution

Status = Execution.Status
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def failing(make_spec):
    return make_spec("raise_value_error", name="breaks", max_attempts=1)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=True) as traveller:
        yield traveller


def _fail_times(spec, n: int) -> list:
    return [run_task(spec) for _ in range(n)]


@pytest.mark.django_db
def test_opens_on_the_fifth_failure_within_the_window(failing, clock):
    _fail_times(failing, 4)
    state = CircuitState.objects.get(task__name="breaks")
    assert state.state == "closed"
    _fail_times(failing, 1)
    state.refresh_from_db()
    assert state.state == "open"
    assert state.failure_count == 5
    alert = Alert.objects.get(task__name="breaks", kind="circuit_open")
    assert alert.state == "open"
    assert "5 failed attempts within 60 min" in alert.message


@pytest.mark.django_db
def test_failures_outside_the_window_do_not_count(failing, clock):
    _fail_times(failing, 4)
    clock.shift(timedelta(minutes=61))
    _fail_times(failing, 1)
    assert CircuitState.objects.get(task__name="breaks").state == "closed"


@pytest.mark.django_db
def test_open_circuit_skips_and_exits_3_until_the_cooldown(failing, clock):
    _fail_times(failing, 5)
    clock.shift(timedelta(minutes=59))
    outcome = run_task(failing)
    assert outcome.exit_code == 3
    (row,) = outcome.executions
    assert row.status == Status.SKIPPED
    assert row.skip_reason == "circuit_open"
    assert "circuit open until" in row.error
    # Skips never count as failures.
    assert CircuitState.objects.get(task__name="breaks").failure_count == 5


@pytest.mark.django_db
def test_successful_trial_after_the_cooldown_closes_the_circuit(failing, make_spec, clock):
    _fail_times(failing, 5)
    clock.shift(timedelta(hours=1, seconds=1))
    healed = make_spec("succeed", name="breaks", max_attempts=1)
    outcome = run_task(healed)
    assert outcome.exit_code == 0
    state = CircuitState.objects.get(task__name="breaks")
    assert state.state == "closed"
    assert Alert.objects.get(task__name="breaks", kind="circuit_open").state == "resolved"
    # Closed afresh: the old failures no longer count towards the next opening.
    _fail_times(failing, 1)
    assert CircuitState.objects.get(task__name="breaks").state == "closed"


@pytest.mark.django_db
def test_failed_trial_reopens_the_circuit_for_another_cooldown(failing, clock):
    _fail_times(failing, 5)
    clock.shift(timedelta(hours=1, seconds=1))
    trial = run_task(failing)
    assert len(trial.executions) == 1
    assert trial.executions[0].status == Status.FAILED
    state = CircuitState.objects.get(task__name="breaks")
    assert state.state == "open"
    assert state.opened_at > START + timedelta(hours=1)
    assert run_task(failing).executions[0].skip_reason == "circuit_open"
    assert Alert.objects.get(task__name="breaks", kind="circuit_open").occurrences == 2


@pytest.mark.django_db
def test_trial_failure_stops_the_remaining_attempts(make_spec, clock):
    spec = make_spec("raise_value_error", name="breaks", max_attempts=3)
    run_task(spec)  # 3 failed attempts
    run_task(spec)  # the 5th failure opens the circuit: no 6th attempt
    assert Execution.objects.filter(task__name="breaks", attempt__gt=0).count() == 5
    assert CircuitState.objects.get(task__name="breaks").state == "open"


@pytest.mark.django_db(transaction=True)
def test_exactly_one_trial_when_invocations_race(failing, clock):
    _fail_times(failing, 5)
    clock.shift(timedelta(hours=1, seconds=1))
    task = CircuitState.objects.get(task__name="breaks").task
    barrier = threading.Barrier(8)
    decisions = []

    def contend(i: int) -> None:
        try:
            barrier.wait()
            decisions.append(circuit.consult(task, f"{i:032d}"))
        finally:
            connection.close()

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(d.allowed for d in decisions) == 1
    assert sum(d.trial for d in decisions) == 1
    assert CircuitState.objects.get(task=task).state == "half_open"


@pytest.mark.django_db
def test_resetcircuit_command_closes_and_resolves(failing, clock, capsys):
    _fail_times(failing, 5)
    call_command("resetcircuit", "breaks")
    assert "breaks: circuit open -> closed" in capsys.readouterr().out
    assert CircuitState.objects.get(task__name="breaks").state == "closed"
    assert Alert.objects.get(task__name="breaks", kind="circuit_open").state == "resolved"
    assert run_task(failing).executions[0].status == Status.FAILED  # runs again


@pytest.mark.django_db
def test_resetcircuit_unknown_task_is_a_usage_error_listing_tasks():
    expected = r"unknown task 'nope'\. Known tasks: .*heartbeat"
    with pytest.raises(CommandError, match=expected) as err:
        call_command("resetcircuit", "nope")
    assert err.value.returncode == 2


@pytest.mark.django_db
def test_breaker_off_never_skips(make_spec, clock):
    spec = make_spec("raise_value_error", name="breaks", max_attempts=1, circuit_breaker=False)
    outcomes = _fail_times(spec, 7)
    assert all(o.executions[0].status == Status.FAILED for o in outcomes)


@pytest.mark.django_db
def test_stale_trial_of_a_dead_supervisor_is_replaced(failing, clock):
    _fail_times(failing, 5)
    clock.shift(timedelta(hours=1, seconds=1))
    task = CircuitState.objects.get(task__name="breaks").task
    assert circuit.consult(task, "1" * 32).trial  # its supervisor then dies
    assert not circuit.consult(task, "2" * 32).allowed
    clock.shift(timedelta(hours=1))
    assert circuit.consult(task, "3" * 32).trial


def _circuit_reads(ctx: CaptureQueriesContext) -> int:
    return sum(
        query["sql"].startswith("SELECT") and "cronjobs_circuitstate" in query["sql"]
        for query in ctx.captured_queries
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("job", "attempts"), [("succeed", 1), ("raise_value_error", 3)])
def test_a_run_reads_its_circuit_row_once(make_spec, clock, job, attempts):
    spec = make_spec(job, name="breaks", max_attempts=3)
    with CaptureQueriesContext(connection) as ctx:
        outcome = run_task(spec)
    assert len(outcome.executions) == attempts
    assert _circuit_reads(ctx) == 1


@pytest.mark.django_db
def test_a_reset_during_the_trial_is_not_undone_by_its_failure(failing, clock):
    _fail_times(failing, 5)
    clock.shift(timedelta(hours=1, seconds=1))
    task = CircuitState.objects.get(task__name="breaks").task
    decision = circuit.consult(task, "1" * 32)
    assert decision.trial
    call_command("resetcircuit", "breaks")  # an operator closes it while the trial runs
    row = make_execution(task, "failed", run_id="1" * 32)

    assert not circuit.record_attempt(task, "1" * 32, row, decision.state)
    assert CircuitState.objects.get(task=task).state == "closed"  # the retries go on
