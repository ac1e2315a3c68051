"""Connection care for a supervisor that may sit idle for hours while its job runs, must never
hang on a database that stopped answering (docs/operations.md, "Lease"), and whose jobs must not
inherit its connection."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connection, connections

# Seconds during which a connection found usable is taken as it is without another ping: the
# supervisor's writes around a short job come in quick succession, and a ping before each was a
# fifth of its statements.
FRESH = 1.0


def ensure_usable_connection() -> None:
    """MySQL drops connections idle for longer than wait_timeout, and Django only notices after
    a query has failed. Ping before reusing the supervisor's connection; reconnect if gone."""
    if connection.connection is None:
        return
    now = time.monotonic()
    if now - getattr(connection, "_checked_at", -FRESH) < FRESH:
        return
    if connection.is_usable():
        setattr(connection, "_checked_at", now)  # noqa: B010 - not a Django attribute
    else:
        connection.close()


def bound_waits(seconds: float) -> None:
    """Give this thread's MySQL connection read and write timeouts of `seconds`, so a query on
    a connection whose peer went silent (a partition, a frozen proxy) fails instead of waiting
    for TCP to give up, which takes a quarter of an hour. The settings of the project are not
    changed: only this thread's connection object carries them, and the job's worker process
    goes back to the project's own (detach_inherited_connections)."""
    if connection.vendor != "mysql":
        return  # SQLite is a local file: no peer to lose; its lock wait is its own timeout
    wait = max(1, round(seconds))
    options = {**connection.settings_dict.get("OPTIONS", {})}
    options.update(read_timeout=wait, write_timeout=wait)
    options["connect_timeout"] = min(options.get("connect_timeout", wait), wait)
    connection.settings_dict = {**connection.settings_dict, "OPTIONS": options}
    if connection.connection is not None and not connection.in_atomic_block:
        connection.close()  # the next query connects with the timeouts


class Background:
    """One daemon thread with its own database connection that runs one call at a time for a
    caller that must not wait: the monitor of a running attempt, whose beat may never block on
    the database. `offer` starts a call only when the thread is idle and returns its Future at
    once; a call stuck on a frozen connection keeps only this thread busy (and, being a daemon
    thread, never holds up the process's exit)."""

    def __init__(self, name: str, timeout: float) -> None:
        self.name, self.timeout = name, timeout
        self._calls: queue.SimpleQueue[
            tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None
        ] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._current: concurrent.futures.Future[Any] | None = None

    @property
    def busy(self) -> bool:
        return self._current is not None and not self._current.done()

    def offer(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any] | None:
        """Run `call` on the thread if it is idle; None, doing nothing, when it is busy."""
        if self.busy:
            return None
        if connection.in_atomic_block:
            # Another connection cannot see the caller's uncommitted rows (its lease row), and
            # on SQLite it would wait on the caller's write lock: run it on the caller's own.
            # runjob never runs an attempt inside a transaction; a test wrapped in one does.
            return _called(call)
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
            self._thread.start()
        self._current = concurrent.futures.Future()
        self._calls.put((call, self._current))
        return self._current

    def close(self) -> None:
        """Let the thread close its connection and end once its current call is over."""
        if self._thread is not None:
            self._calls.put(None)
            self._thread = None

    def _serve(self) -> None:
        bound_waits(self.timeout)
        try:
            while (item := self._calls.get()) is not None:
                call, future = item
                future.set_running_or_notify_cancel()
                try:
                    future.set_result(call())
                except BaseException as exc:  # handed to the caller through the Future
                    future.set_exception(exc)
                    connection.close()  # a failed call may leave a dead socket: start afresh
        finally:
            connections.close_all()


def _called(call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    try:
        future.set_result(call())
    except Exception as exc:  # handed to the caller through the Future, as on the thread
        future.set_exception(exc)
    return future


# Connections a forked child found open in its parent. Using them would interleave two
# processes on one socket, and closing them (or letting them be freed) would tell the server to
# hang up on the parent too: the child keeps the objects alive and opens its own.
_inherited: list[Any] = []


def detach_inherited_connections(reset_settings: bool = False) -> None:
    """In a child just forked: leave the parent's open connections alone and let Django open
    fresh ones here. `reset_settings` goes back to the project's own connection settings (a
    job's worker; a supervisor forked by the dispatcher keeps its `bound_waits`)."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited.append(conn.connection)
            conn.connection = None
        if reset_settings:
            conn.settings_dict = connections.settings[conn.alias]


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
