"""Daily log files under LOG_DIR (docs/operations.md, "Logs"):

* `cron-YYYY-MM-DD.log`: human lines, including every line of job output;
* `cron-metrics-YYYY-MM-DD.log`: one JSON object per attempt;
* `cron-stdout.log`: what installed crontab lines print (rotated to `cron-stdout-YYYY-MM-DD.log`).

`retain()` keeps them bounded: files older than CRONJOBS_LOG_RETENTION_DAYS (by the date in
their name) are deleted, files older than a day are gzipped (`cron-YYYY-MM-DD.log.gz`), and
the crontab's stdout file is rotated. Today's files are never touched, so the API's log tail
and every writer keep working.

Dates are local dates in TIME_ZONE. Each write opens the file in append mode, so several
runjob processes can share one file and rotation needs no coordination (lines written with
O_APPEND are not interleaved mid-line).
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

from django.conf import settings
from django.utils import timezone


def log_dir() -> Path:
    path = Path(settings.LOG_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def daily_log_path(kind: str = "cron", when: datetime | None = None) -> Path:
    day = timezone.localtime(when).date().isoformat()
    return log_dir() / f"{kind}-{day}.log"


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def _stamp() -> str:
    return timezone.localtime().strftime("%Y-%m-%d %H:%M:%S")


def write(level: str, task: str, message: str) -> None:
    _append(daily_log_path(), f"{_stamp()} {level:<7} {task} {message}\n")


# A line of job output longer than this is split when written, so the supervisor holds at most
# one chunk plus one capped partial line whatever a job prints, and every log line is short
# enough for tail() to read back cheaply.
LINE_CAP = 64 * 1024
# tail() reads at most this much of the file, and answers at most this much text.
TAIL_BYTES = 1024 * 1024


class OutputLog:
    """Job output, line by line, into the daily log, prefixed with the task and run. Lines
    longer than LINE_CAP bytes are written as several lines of LINE_CAP bytes."""

    def __init__(self, task: str, run_id: str, attempt: int, line_cap: int = LINE_CAP):
        self.prefix = f"{task}[{run_id[:8]}#{attempt}] | "
        self.partial = b""
        self.line_cap = line_cap

    def feed(self, chunk: bytes) -> None:
        data = self.partial + chunk  # at most one capped line plus one pipe read
        *lines, self.partial = data.split(b"\n")
        cap = self.line_cap
        pieces = [line[i : i + cap] for line in lines for i in range(0, len(line) or 1, cap)]
        if len(self.partial) >= cap:
            whole = len(self.partial) - len(self.partial) % cap
            pieces += [self.partial[i : i + cap] for i in range(0, whole, cap)]
            self.partial = self.partial[whole:]
        if pieces:
            self._write(pieces)

    def close(self) -> None:
        if self.partial:
            self._write([self.partial])
            self.partial = b""

    def _write(self, lines: list[bytes]) -> None:
        stamp = _stamp()
        text = "".join(
            f"{stamp} OUTPUT  {self.prefix}{line.decode('utf-8', errors='replace')}\n"
            for line in lines
        )
        _append(daily_log_path(), text)


def write_metrics(record: dict[str, Any]) -> None:
    _append(daily_log_path("cron-metrics"), json.dumps(record, default=str) + "\n")


def tail(lines: int, when: datetime | None = None, max_bytes: int = TAIL_BYTES) -> list[str]:
    """The last `lines` lines of a day's human log (today by default), at most `max_bytes`
    of text in all. Reads backwards block by block and counts each block's newlines once, so
    the cost is linear in what is returned, never in the size of the file; a line longer than
    the budget (written before lines were capped) comes back cut, marked with a leading "…"."""
    path = daily_log_path(when=when)
    if not path.exists():
        return []
    blocks: list[bytes] = []
    newlines = 0
    with open(path, "rb") as fh:
        position = fh.seek(0, 2)
        start = max(0, position - max_bytes)
        while position > start and newlines <= lines:
            step = min(65536, position - start)
            position -= step
            fh.seek(position)
            blocks.append(fh.read(step))
            newlines += blocks[-1].count(b"\n")
    data = b"".join(reversed(blocks))
    found = data.splitlines()[-lines:]
    cut = position > 0 and newlines <= lines and bool(found)  # the first line began earlier
    text = [line.decode("utf-8", errors="replace") for line in found]
    if cut:
        text[0] = "…" + text[0]
    return text


DATED_LOG = re.compile(r"^(cron|cron-metrics|cron-stdout)-(\d{4}-\d{2}-\d{2})\.log(\.gz)?$")
CRONTAB_STDOUT = "cron-stdout.log"


class Retained(TypedDict):
    deleted: list[str]
    compressed: list[str]
    rotated: list[str]


def retain(days: int, today: date | None = None) -> Retained:
    """1. Rotate the crontab's stdout file to one dated today (cron lines append to it with
    `>>`: a line still writing keeps its open file, the next opens a fresh one).
    2. Delete dated files more than `days` old. 3. Gzip dated files older than yesterday."""
    today = today or timezone.localdate()
    done: Retained = {"deleted": [], "compressed": [], "rotated": []}
    folder = log_dir()
    stdout = folder / CRONTAB_STDOUT
    rotated = folder / f"cron-stdout-{today.isoformat()}.log"
    if stdout.exists() and stdout.stat().st_size and not rotated.exists():
        stdout.rename(rotated)
        done["rotated"].append(rotated.name)
    for path in sorted(folder.iterdir()):
        match = DATED_LOG.match(path.name)
        if not match or not path.is_file():
            continue
        day = date.fromisoformat(match.group(2))
        if day < today - timedelta(days=days):
            path.unlink()
            done["deleted"].append(path.name)
        elif day < today - timedelta(days=1) and not match.group(3):
            done["compressed"].append(_gzip(path).name)
    return done


def _gzip(path: Path) -> Path:
    """Write PATH.gz beside it, then remove PATH; a half-written .gz from a crash is redone."""
    target = path.with_name(path.name + ".gz")
    partial = path.with_name(path.name + ".gz.partial")
    with open(path, "rb") as source, gzip.open(partial, "wb") as sink:
        shutil.copyfileobj(source, sink)
    partial.replace(target)
    path.unlink()
    return target
