"""A real gunicorn (gunicorn.conf.py, as `bin/serve` runs it) on a free loopback port, serving
the test database, for the tests that must go through the production web server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.management import call_command
from django.test import override_settings

from tests.helpers import ROOT, database_url, wait_for

GUNICORN = Path(sys.executable).with_name("gunicorn")


_PROJECT_CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "cronjobs_cache",
    }
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.HTTPError:
        return True  # any HTTP answer: the server is up
    except OSError:
        return False
    return True


@contextmanager
def gunicorn(log_dir: Path, workers: int = 3, **env: str) -> Iterator[str]:
    """Start gunicorn on the test database and yield its base URL; stop it afterwards. The
    test must use `transactional_db`, so the rows it writes are visible to the workers."""
    # The workers share the database cache (rate limits); the test process uses its own.
    with override_settings(CACHES=_PROJECT_CACHES):
        call_command("createcachetable", verbosity=0)
    port = free_port()
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "FLAGGED_CRON_LIVE_SERVER": "1",
        "LOG_DIR": str(log_dir),
        "WEB_CONCURRENCY": str(workers),
        "WEB_ACCESS_LOG": "",
        **env,
    }
    stderr = log_dir.parent / f"gunicorn-{port}.log"
    log_dir.mkdir(parents=True, exist_ok=True)
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            [str(GUNICORN), "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=environ,
            stdout=errors,
            stderr=errors,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: process.poll() is not None or _answers(f"{base}/api/status/"),
            timeout=180,  # start-up of several workers on a loaded machine
            what="gunicorn to answer",
        )
        assert process.poll() is None, stderr.read_text()
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
