"""Connection care for a supervisor that may sit idle for hours while its job runs, and whose
jobs must not inherit its connection."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from django.db import connection


def ensure_usable_connection() -> None:
    """MySQL drops connections idle for longer than wait_timeout, and Django only notices after
    a query has failed. Ping before reusing the supervisor's connection; reconnect if gone."""
    if connection.connection is not None and not connection.is_usable():
        connection.close()


def not_inheritable(**kwargs: Any) -> None:
    """connection_created: mark every open descriptor close-on-exec. libmariadb's socket and
    SQLite's database file are opened by C code without O_CLOEXEC (Python's own files have it),
    so anything exec'd from a fork of this process would inherit the connection."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            # The listing's own descriptor is closed already.
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)
