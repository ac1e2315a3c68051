"""Wrap every callable task so that, after the job returns, its attempt's output gets one more
line, e.g. `generate_daily_products: queries=123` (bench/flagged_jobs.py reads it there).

The count comes from a Django execute_wrapper on the connection of the worker process that runs
the job, so the supervisor's own bookkeeping, done in the parent process, is not counted."""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection

from cronjobs.supervisor.registry import registry


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: Any):
        self.count += 1
        return execute(sql, params, many, context)


@contextlib.contextmanager
def counted_queries() -> Iterator[QueryCounter]:
    counter = QueryCounter()
    with connection.execute_wrapper(counter):
        yield counter


def counted(task: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """The job function, reporting its query count; the same signature for the runner."""

    @functools.wraps(func)
    def job(*args: Any) -> Any:
        with counted_queries() as counter:
            result = func(*args)
        print(f"{task}: queries={counter.count}")
        return result

    return job


def count_every_job() -> None:
    """Replace each task function in its module, where the runner looks it up by name."""
    for spec in registry.load().tasks.values():
        module_name, _, name = str(spec.target).partition(":")
        if spec.kind != "callable" or "." in name:
            continue  # a command is another program; no task here targets a Class.method
        module = importlib.import_module(module_name)
        setattr(module, name, counted(spec.name, getattr(module, name)))
