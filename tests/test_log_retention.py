"""Log retention (cronjobs.supervisor.logs.retain, run by prune_history): files dated by their
name are deleted beyond CRONJOBS_LOG_RETENTION_DAYS and gzipped when older than a day; the
crontab's stdout file is rotated; today's file, the spool and anything else stay."""

from __future__ import annotations

import gzip
from datetime import date, timedelta

import pytest
from django.utils import timezone

from cronjobs.supervisor import logs

TODAY = date(2026, 12, 1)


def day(n: int, today: date = TODAY) -> str:
    return (today - timedelta(days=n)).isoformat()


def fill(folder, today: date = TODAY) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in (
        f"cron-{day(0, today)}.log",
        f"cron-{day(1, today)}.log",
        f"cron-{day(2, today)}.log",
        f"cron-metrics-{day(2, today)}.log",
        f"cron-{day(30, today)}.log",
        f"cron-{day(31, today)}.log",
        f"cron-metrics-{day(45, today)}.log.gz",
        "spool.jsonl",
        "notes.txt",
    ):
        (folder / name).write_text(f"lines of {name}\n")
    (folder / "cron-stdout.log").write_text("what cron printed\n")


def test_retain_deletes_old_files_gzips_older_than_a_day_and_rotates_stdout(log_dir):
    fill(log_dir)
    done = logs.retain(30, today=TODAY)
    assert sorted(done["deleted"]) == [f"cron-{day(31)}.log", f"cron-metrics-{day(45)}.log.gz"]
    assert sorted(done["compressed"]) == sorted(
        [f"cron-{day(2)}.log.gz", f"cron-{day(30)}.log.gz", f"cron-metrics-{day(2)}.log.gz"]
    )
    assert done["rotated"] == [f"cron-stdout-{day(0)}.log"]
    assert sorted(p.name for p in log_dir.iterdir()) == sorted(
        [
            f"cron-{day(0)}.log",
            f"cron-{day(1)}.log",
            f"cron-{day(2)}.log.gz",
            f"cron-metrics-{day(2)}.log.gz",
            f"cron-{day(30)}.log.gz",
            f"cron-stdout-{day(0)}.log",
            "spool.jsonl",
            "notes.txt",
        ]
    )
    with gzip.open(log_dir / f"cron-{day(2)}.log.gz", "rt") as fh:
        assert fh.read() == f"lines of cron-{day(2)}.log\n"
    assert (log_dir / f"cron-stdout-{day(0)}.log").read_text() == "what cron printed\n"


def test_a_second_pass_changes_nothing_and_the_rotated_stdout_is_gzipped_later(log_dir):
    fill(log_dir)
    logs.retain(30, today=TODAY)
    assert logs.retain(30, today=TODAY) == {"deleted": [], "compressed": [], "rotated": []}
    later = logs.retain(30, today=TODAY + timedelta(days=2))
    assert f"cron-stdout-{day(0)}.log.gz" in later["compressed"]


def test_the_api_log_tail_still_reads_todays_file(log_dir, admin_client):
    fill(log_dir, timezone.localdate())
    logs.write("INFO", "heartbeat", "written today")
    logs.retain(1)
    body = admin_client.get("/api/logs/?lines=5").json()
    assert any("written today" in line for line in body["lines"])


@pytest.mark.django_db(transaction=True)
def test_prune_history_applies_the_retention_setting(manage, log_dir):
    today = timezone.localdate()
    fill(log_dir, today)
    result = manage("prune_history", env_extra={"CRONJOBS_LOG_RETENTION_DAYS": "2"})
    assert result.returncode == 0, result.stderr
    assert "log files: 3 deleted, 2 gzipped, 1 rotated" in result.stdout
    assert not (log_dir / f"cron-{day(30, today)}.log").exists()
    assert (log_dir / f"cron-{day(2, today)}.log.gz").exists()


@pytest.mark.django_db(transaction=True)
def test_prune_history_rejects_a_zero_log_window(manage, log_dir):
    fill(log_dir)
    result = manage("prune_history", "--log-days", "0")
    assert result.returncode == 2
    assert "--log-days must be at least 1, not 0" in result.stderr
    assert (log_dir / f"cron-{day(31)}.log").exists()
