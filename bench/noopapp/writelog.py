"""How long a runner's writes to the history take, measured inside the `runjob` process:
bench/ten_million.py sets BENCH_WRITE_LOG (bench/settings.py) to a file, and every INSERT or
UPDATE of cronjobs_execution, every write of cronjobs_rollup and every transaction commit of the
process appends one line to it: `<kind> <seconds>`, kind being insert, finalise (the UPDATE
that records the outcome), update (any other UPDATE of the row), rollup or commit.

The time is the database's answer as the process waits for it: network, lock waits and, in
autocommit, the commit's flush. Each line is one short append, so processes do not interleave
within a line."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created


def install() -> None:
    if settings.BENCH_WRITE_LOG:
        connection_created.connect(_watch, dispatch_uid="bench-write-log")


def _watch(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Once per connection object (a reconnect reuses it): time its statements and commits."""
    if getattr(connection, "bench_write_log", False):
        return
    connection.bench_write_log = True
    connection.execute_wrappers.append(_timed_statement)
    commit = connection._commit

    def timed_commit() -> None:
        began = time.perf_counter()
        commit()
        _log("commit", time.perf_counter() - began)

    connection._commit = timed_commit


def _timed_statement(execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
    began = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        kind = _kind(sql)
        if kind:
            _log(kind, time.perf_counter() - began)


def _kind(sql: str) -> str | None:
    head = sql.lstrip()[:40].upper().replace('"', "`")
    if "CRONJOBS_ROLLUP" in sql.upper() and not head.startswith("SELECT"):
        return "rollup"
    if head.startswith("INSERT INTO `CRONJOBS_EXECUTION`"):
        return "insert"
    if head.startswith("UPDATE `CRONJOBS_EXECUTION`"):
        return "finalise" if "`finished_at`" in sql else "update"
    return None


def _log(kind: str, seconds: float) -> None:
    with open(settings.BENCH_WRITE_LOG, "a") as out:
        out.write(f"{kind} {seconds:.6f}\n")
