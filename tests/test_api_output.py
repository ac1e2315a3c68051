"""GET /api/runs/<run_id>/output/: a run's output from a byte offset, carried through the
database (cronjobs/supervisor/liveoutput.py), so a runjob on another host can be followed; its
offsets (Execution.output_from), its bad input, and the admin page that follows it live.
Who may call it is in tests/test_api_auth.py's matrix; the browser follows it in
tests/test_browser_live_output.py."""

from __future__ import annotations

import subprocess

import pytest

from cronjobs.models import Execution, Lease
from cronjobs.supervisor.liveoutput import LiveTail
from cronjobs.views.payloads import OUTPUT_CHUNK
from tests.api_fixtures import client_for
from tests.helpers import ago, make_execution, make_task, make_user, wait_for

RUN = "a" * 32


def output(client, run_id: str = RUN, **params):
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return client.get(f"/api/runs/{run_id}/output/" + (f"?{query}" if query else ""))


@pytest.fixture
def viewer(db):
    return client_for("read_only")


# Execution.output_from: offsets count bytes of the output as UTF-8.


def row(text: str, size: int | None = None) -> Execution:
    return Execution(output=text, output_bytes=size)


def test_reading_from_zero_gives_all_the_output_and_where_it_ends():
    piece = row("héllo\n").output_from(0, 100)
    assert piece == ("héllo\n", 7, 0, 7)


def test_reading_from_an_offset_gives_what_came_after_it():
    piece = row("héllo\n").output_from(3, 100)
    assert (piece.text, piece.offset, piece.skipped) == ("llo\n", 7, 0)


def test_bytes_no_longer_held_are_skipped_not_invented():
    # 1,000 bytes printed, the row holds the last 10.
    piece = row("0123456789", size=1000).output_from(100, 100)
    assert (piece.text, piece.offset, piece.skipped, piece.size) == ("0123456789", 1000, 890, 1000)


def test_a_limited_read_ends_on_a_whole_character_and_the_next_read_goes_on():
    held = row("aé€😀z")  # 1 + 2 + 3 + 4 + 1 bytes
    first = held.output_from(0, 5)  # 'a', 'é' and the first two bytes of '€'
    assert (first.text, first.offset) == ("aé", 3)
    second = held.output_from(first.offset, 5)
    assert (second.text, second.offset) == ("€", 6)
    rest = held.output_from(second.offset, 100)
    assert (rest.text, rest.offset) == ("😀z", 11)


def test_an_offset_inside_a_character_starts_at_the_next_one():
    piece = row("é€").output_from(1, 100)  # inside 'é'
    assert (piece.text, piece.offset, piece.skipped) == ("€", 5, 1)


def test_an_offset_past_the_end_is_refused():
    with pytest.raises(ValueError, match="past the end of the output"):
        row("abc").output_from(4, 100)
    assert row("abc").output_from(3, 100) == ("", 3, 0, 3)


# LiveTail: what the supervisor keeps and writes.


def test_live_tail_counts_every_byte_and_keeps_the_last_whole_characters():
    tail = LiveTail(cap=8)
    for chunk in (b"abc", "déf".encode(), b"\xe2\x82", b"\xac", b"0123456789"):
        tail.feed(chunk)
    tail.finish()
    assert tail.size == len("abcdéf€0123456789".encode())
    assert tail.text() == "23456789"
    assert tail.take() == ("23456789", tail.size)
    assert tail.take() is None  # nothing new since


def test_live_tail_turns_bytes_that_are_not_utf8_into_replacement_characters():
    tail = LiveTail(cap=100)
    tail.feed(b"ok \xff\xfe end \xe2\x82")  # two stray bytes, and a cut character at the end
    tail.finish()
    assert tail.text() == "ok \ufffd\ufffd end \ufffd"
    assert tail.size == len(tail.text().encode())


def test_live_tail_never_starts_inside_a_character():
    tail = LiveTail(cap=4)
    tail.feed("a€€".encode())  # 7 bytes: the last 4 start inside the first €
    assert tail.text() == "€"


# The endpoint.


@pytest.mark.django_db
def test_the_latest_attempt_of_a_finished_run(viewer):
    task = make_task("nightly")
    make_execution(task, "failed", run_id=RUN, attempt=1, output="first\n", output_bytes=6)
    make_execution(task, "succeeded", run_id=RUN, attempt=2, output="second\n", output_bytes=7)
    response = output(viewer)
    assert response.status_code == 200
    assert response.json() == {
        "run_id": RUN,
        "attempt": 2,
        "status": "succeeded",
        "running": False,
        "offset": 7,
        "skipped": 0,
        "size": 7,
        "text": "second\n",
    }
    first = output(viewer, attempt=1, offset=2).json()
    assert (first["attempt"], first["text"], first["offset"]) == (1, "rst\n", 6)


@pytest.mark.django_db
def test_a_run_waiting_to_retry_is_still_running(viewer):
    task = make_task("nightly")
    make_execution(task, "failed", run_id=RUN, attempt=1, output="boom\n")
    Lease.objects.create(task=task, run_id=RUN, host="elsewhere", pid=1, expires_at=ago(minutes=-5))
    body = output(viewer).json()
    assert (body["status"], body["running"]) == ("failed", True)
    Lease.objects.filter(task=task).update(run_id="")
    assert output(viewer).json()["running"] is False


@pytest.mark.django_db
def test_one_answer_carries_at_most_one_chunk_and_the_next_poll_reads_on(viewer, settings):
    task = make_task("nightly")
    text = "x" * (OUTPUT_CHUNK + 1000) + "é"
    make_execution(task, "running", run_id=RUN, output=text, output_bytes=len(text.encode()))
    first = output(viewer).json()
    assert len(first["text"]) == OUTPUT_CHUNK and first["offset"] == OUTPUT_CHUNK
    assert first["running"] is True and first["size"] == len(text.encode())
    second = output(viewer, offset=first["offset"]).json()
    assert first["text"] + second["text"] == text
    assert second["offset"] == second["size"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("offset=-1", "offset must be from 0 to"),
        ("offset=abc", "offset must be a whole number"),
        ("offset=1.5", "offset must be a whole number"),
        ("offset=", "offset must be a whole number"),
        ("offset=%EF%BC%95", "offset must be a whole number"),  # a full-width 5
        ("offset=9007199254740992", "offset must be from 0 to 9007199254740991"),
        ("offset=" + "9" * 5000, "not a 5000-digit number"),
        ("offset=" + "0" * 5000, "not a 5000-digit number"),
        ("offset=7", "offset 7 is past the end of the output (6 bytes)"),
        ("offset=1&offset=2", "given 2 times"),
        ("attempt=0", "attempt must be from 1 to"),
        ("lines=5", "unknown parameter 'lines'"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(viewer, query, message):
    make_execution(make_task("nightly"), "running", run_id=RUN, output="hello\n")
    response = viewer.get(f"/api/runs/{RUN}/output/?{query}")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    assert message in response.json()["error"]


@pytest.mark.django_db
def test_an_unknown_run_or_attempt_is_a_404(viewer):
    task = make_task("nightly")
    make_execution(task, "succeeded", run_id=RUN, output="hi")
    make_execution(task, "skipped", run_id="b" * 32)
    for path, message in [
        ("/api/runs/nope/output/", "no run 'nope'"),
        ("/api/runs/" + "b" * 32 + "/output/", "no run"),  # a skip printed nothing
        (f"/api/runs/{RUN}/output/?attempt=2", f"no attempt 2 of run '{RUN}'"),
        ("/api/runs/" + "z" * 5000 + "/output/", "no run"),
    ]:
        response = viewer.get(path)
        assert response.status_code == 404, path
        assert message in response.json()["error"]


@pytest.mark.django_db
def test_the_output_of_a_row_from_before_the_count_starts_at_zero(viewer):
    make_execution(make_task("nightly"), "succeeded", run_id=RUN, output="old\n")
    body = output(viewer).json()
    assert (body["text"], body["offset"], body["size"]) == ("old\n", 4, 4)


# The admin page of a running attempt.


@pytest.mark.django_db
def test_a_running_attempts_page_follows_its_output_and_an_ended_one_does_not(client):
    client.force_login(make_user("viewer", "view_execution", "view_task"))
    task = make_task("nightly")
    running = make_execution(task, "running", run_id=RUN, output="<b>so far</b>", output_bytes=50)
    page = client.get(f"/admin/cronjobs/execution/{running.pk}/change/").content.decode()
    assert 'id="fc-live-output"' in page
    assert f'data-url="/api/runs/{RUN}/output/?attempt=1"' in page
    assert 'data-offset="50"' in page
    assert "&lt;b&gt;so far&lt;/b&gt;" in page  # escaped, never markup
    assert "cronjobs/live_output.js" in page
    assert "<script>" not in page.split("</head>")[1]  # no inline script (Content-Security-Policy)
    ended = make_execution(task, "succeeded", output="done")
    page = client.get(f"/admin/cronjobs/execution/{ended.pk}/change/").content.decode()
    assert 'id="fc-live-output"' not in page and "done" in page


# A real runjob in another process, on "another host": the output comes through the database.

TASKS = """
[tasks.chatty]
command = ["sh", "-c", "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.6; done; printf 'fin é'"]
timeout = 60
max_attempts = 1
"""


@pytest.mark.django_db(transaction=True)
def test_the_output_of_a_run_on_another_host_grows_while_it_runs(manage, tmp_path, client):
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(TASKS)
    env = {"CRONJOBS_TASKS_FILE": str(tasks), "CRONJOBS_HOST": "worker-2"}
    runjob = subprocess.Popen(
        manage.argv("runjob", "chatty", "--trigger", "cron"),
        env=manage.env({**env, "LOG_DIR": str(tmp_path / "worker-2-logs")}),  # not ours
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        run_id = wait_for(
            lambda: (
                Execution.objects.filter(task__name="chatty")
                .values_list("run_id", flat=True)
                .first()
            ),
            what="the run to start",
        )
        client.force_login(make_user("watcher", "view_execution"))
        seen, offset, answers = "", 0, []

        def poll() -> bool:
            nonlocal seen, offset
            body = output(client, run_id, offset=offset).json()
            assert body["skipped"] == 0
            seen, offset = seen + body["text"], body["offset"]
            answers.append((body["running"], seen))
            return not body["running"] and offset == body["size"]

        wait_for(poll, timeout=60, interval=0.3, what="the run to end")
        assert runjob.wait(timeout=30) == 0
    finally:
        runjob.kill()
        runjob.wait()
    expected = "".join(f"line {i}\n" for i in range(1, 7)) + "fin é"
    assert seen == expected
    partial = [text for running, text in answers if running and "line 1" in text]
    assert partial and "line 6" not in partial[0]  # seen before the end, not only after it
    finished = Execution.objects.get(run_id=run_id)
    assert finished.output == expected and finished.output_bytes == len(expected.encode())
