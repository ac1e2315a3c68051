"""An external dead man's switch: Healthchecks-protocol pings (docs/operations.md, "External
monitoring with Healthchecks or Cronitor").

A task with a `ping_url` (or every task, through CRONJOBS_PING_URL_TEMPLATE) gets `<url>/start`
before its first attempt, `<url>` when the run succeeds and `<url>/fail` with the output tail
when it fails, each with `?rid=<run id>` so the endpoint pairs start and end. The watchdog pings
CRONJOBS_WATCHDOG_PING_URL on every sweep, so an external monitor notices when cron, every host
or the database is gone.

A ping never changes a result and never holds a run for long: each try waits at most
CRONJOBS_PING_TIMEOUT seconds, a failed try is retried twice, and one run spends at most
PING_BUDGET seconds on pings in all; past that its remaining pings are skipped (the endpoint is
down and the external monitor will notice the missing end ping on its own).
"""

from __future__ import annotations

import logging
import time
import urllib.request
import uuid

from django.conf import settings

from cronjobs.supervisor import notify

log = logging.getLogger(__name__)

BODY_CAP = 100 * 1024  # Healthchecks stores up to 100 KB of a ping's body
RETRIES = 2
PING_BUDGET = 3.0  # seconds per run, all pings and retries together


def url_for(task_name: str, declared: str = "") -> str:
    """The task's own ping URL, else the template's, else ""."""
    if declared:
        return declared
    template = settings.CRONJOBS_PING_URL_TEMPLATE
    return template.replace("{task}", task_name) if template else ""


class Pinger:
    """The pings of one run, sharing one time budget. A Pinger without a URL does nothing."""

    def __init__(self, url: str, run_id: str, budget: float = PING_BUDGET):
        base, _, self.query = url.partition("?")  # e.g. Healthchecks' ?create=1
        self.url = base.rstrip("/")
        self.rid = _rid(run_id)
        self.deadline = time.monotonic() + budget

    def start(self) -> bool:
        return self.send("start")

    def success(self) -> bool:
        return self.send("")

    def fail(self, output: str = "") -> bool:
        return self.send("fail", output.encode("utf-8", "replace")[-BODY_CAP:])

    def send(self, event: str, body: bytes = b"") -> bool:
        if not self.url:
            return False
        url = f"{self.url}/{event}" if event else self.url
        url += f"?{self.query}&rid={self.rid}" if self.query else f"?rid={self.rid}"
        return notify.guarded(f"ping {event or 'success'}", url, lambda: self._post(url, body))

    def _post(self, url: str, body: bytes) -> None:
        problem: Exception | None = None
        for _ in range(1 + RETRIES):
            remaining = self.deadline - time.monotonic()
            if remaining <= 0.05:
                break
            request = urllib.request.Request(
                url, data=body, headers={"User-Agent": "flagged-cron"}, method="POST"
            )
            try:
                timeout = min(settings.CRONJOBS_PING_TIMEOUT, remaining)
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    response.read(1024)
                return
            except ValueError:
                raise  # a URL urllib cannot use: retrying will not help
            except Exception as exc:  # refused, 5xx, timed out: try again while time is left
                problem = exc
        raise problem or TimeoutError("skipped: this run's time for notifications is spent")


def new_rid() -> str:
    return uuid.uuid4().hex


def _rid(run_id: str) -> str:
    """Healthchecks wants a UUID; our run ids are UUID hex."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return run_id
