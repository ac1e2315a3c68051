"""GET /api/logs/?lines=N: the last lines of today's daily log."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from cronjobs.supervisor import logs
from tests.api_fixtures import client_for

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@pytest.mark.django_db
def test_last_lines_of_todays_log(log_dir):
    api = client_for("read_write")
    with time_machine.travel(NOW, tick=False):
        for n in range(150):
            logs.write("INFO", "nightly", f"line {n}")
        response = api.get("/api/logs/")
        short = api.get("/api/logs/?lines=2").json()
    body = response.json()
    assert body["file"] == "cron-2026-11-20.log"
    assert body["date"] == "2026-11-20"
    assert len(body["lines"]) == 100  # the default
    assert body["lines"][-1].endswith("nightly line 149")
    assert [line.rsplit(" ", 1)[1] for line in short["lines"]] == ["148", "149"]


@pytest.mark.django_db
def test_yesterdays_log_is_not_today(log_dir):
    api = client_for("read_write")
    with time_machine.travel(NOW - dt.timedelta(days=1), tick=False):
        logs.write("INFO", "nightly", "old news")
    with time_machine.travel(NOW, tick=False):
        body = api.get("/api/logs/?lines=5000").json()
    assert body["lines"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?lines=-1", "lines must be from 1 to 5000, not -1"),
        ("?lines=0", "lines must be from 1 to 5000, not 0"),
        ("?lines=5001", "lines must be from 1 to 5000, not 5001"),
        ("?lines=ten", "lines must be a whole number from 1 to 5000"),
        ("?lines=5&tail=1", "unknown parameter 'tail' (allowed: lines)"),
    ],
)
def test_bad_parameters_are_400(query, message):
    api = client_for("read_write")
    response = api.get(f"/api/logs/{query}")
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.django_db
def test_a_40_mb_line_comes_back_cut_and_capped(log_dir):
    """A log written before lines were capped: the answer is bounded by logs.TAIL_BYTES, and
    tail() reads no more of the file than that (tested by its size, not by a clock)."""
    api = client_for("read_write")
    with time_machine.travel(NOW, tick=False):
        logs.write("INFO", "nightly", "before")
        with open(logs.daily_log_path(), "ab") as fh:
            fh.write(b"y" * 40_000_000 + b"\n")
        logs.write("INFO", "nightly", "after")
        response = api.get("/api/logs/?lines=5")
    lines = response.json()["lines"]
    assert len(response.content) < logs.TAIL_BYTES + 4096
    assert lines[-1].endswith("nightly after")
    assert lines[0].startswith("…y")
    assert len(lines) == 2


def test_job_output_lines_are_split_at_the_cap_when_written(log_dir):
    output = logs.OutputLog("chatty", "0123456789abcdef", 1, line_cap=10)
    for chunk in (b"short\n", b"a" * 25, b"b" * 3 + b"\nend"):
        output.feed(chunk)
    output.close()
    written = [line.split(" | ", 1)[1] for line in logs.daily_log_path().read_text().splitlines()]
    assert written == ["short", "a" * 10, "a" * 10, "aaaaabbb", "end"]
