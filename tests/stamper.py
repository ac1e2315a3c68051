"""Two runjob "hosts" and one job that leaves a trace of when each ran, for the fencing and
overlap tests (tests/test_fencing.py, tests/test_overlap.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.helpers import wait_for

# Appends "<host> <unix time>" every 50 ms for FC_RUN_FOR seconds, or until <host>.end exists;
# its pid in <host>.pid.
STAMPER = """
echo $$ > "$FC_TEST_DIR/$CRONJOBS_HOST.pid"
end=$(( $(date +%s) + ${FC_RUN_FOR:-60} ))
while [ "$(date +%s)" -lt "$end" ] && [ ! -e "$FC_TEST_DIR/$CRONJOBS_HOST.end" ]; do
    echo "$CRONJOBS_HOST $(date +%s.%N)" >> "$FC_TEST_DIR/stamps"
    sleep 0.05
done
"""

TASKS = """
[tasks.stamper]
command = ["sh", "SCRIPT"]
pass_env = ["FC_TEST_DIR", "FC_RUN_FOR"]
timeout = 120
max_attempts = 3
retry_delay = 0
overlap = "OVERLAP"
on_lease_lost = "ON_LEASE_LOST"
"""


def declare(directory: Path, overlap: str = "skip", on_lease_lost: str = "stop") -> dict[str, str]:
    """The environment naming a tasks file in `directory` with `stamper` declared so."""
    path, script = directory / "tasks.toml", directory / "stamper.sh"
    script.write_text(STAMPER)
    text = TASKS.replace("OVERLAP", overlap).replace("ON_LEASE_LOST", on_lease_lost)
    path.write_text(text.replace("SCRIPT", str(script)))
    return {"CRONJOBS_TASKS_FILE": str(path), "CRONJOBS_LEASE_BEAT": "1"}


def start(manage: Any, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        manage.argv("runjob", "stamper", "--trigger", "cron"),
        env=manage.env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stamps(job_dir: Path) -> list[tuple[str, float]]:
    path = job_dir / "stamps"
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return [(host, float(when)) for host, when in (line for line in lines if len(line) == 2)]


def stamped_by(job_dir: Path, host: str) -> list[float]:
    return [when for who, when in stamps(job_dir) if who == host]


def job_pid(job_dir: Path, host: str) -> int:
    path = job_dir / f"{host}.pid"
    return int(wait_for(lambda: path.exists() and path.read_text().strip()))


def daily_log(log_dir: Path) -> str:
    return "".join(path.read_text() for path in log_dir.glob("cron-2*.log"))


def assert_never_two_at_once(job_dir: Path) -> None:
    """Every line of the host that ran first comes before every line of the other."""
    hosts = [host for host, _ in stamps(job_dir)]
    first = hosts[0]
    switched = hosts.index(next(host for host in hosts if host != first))
    assert set(hosts[switched:]) == {hosts[switched]}, f"interleaved runs: {hosts}"
