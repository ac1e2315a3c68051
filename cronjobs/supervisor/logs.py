"""Daily log files under LOG_DIR (docs/operations.md, "Logs"):

* `cron-YYYY-MM-DD.log`: human lines, including every line of job output;
* `cron-metrics-YYYY-MM-DD.log`: one JSON object per attempt.

Dates are local dates in TIME_ZONE. Each write opens the file in append mode, so several
runjob processes can share one file and rotation needs no coordination (lines written with
O_APPEND are not interleaved mid-line).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

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


class OutputLog:
    """Job output, line by line, into the daily log, prefixed with the task and run."""

    def __init__(self, task: str, run_id: str, attempt: int):
        self.prefix = f"{task}[{run_id[:8]}#{attempt}] | "
        self.partial = b""

    def feed(self, chunk: bytes) -> None:
        data = self.partial + chunk
        *lines, self.partial = data.split(b"\n")
        if lines:
            self._write(lines)

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


def tail(lines: int, when: datetime | None = None) -> list[str]:
    """The last `lines` lines of a day's human log (today by default)."""
    path = daily_log_path(when=when)
    if not path.exists():
        return []
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size, block, data = fh.tell(), 65536, b""
        while size > 0 and data.count(b"\n") <= lines:
            step = min(block, size)
            size -= step
            fh.seek(size)
            data = fh.read(step) + data
    return [line.decode("utf-8", errors="replace") for line in data.splitlines()[-lines:]]
