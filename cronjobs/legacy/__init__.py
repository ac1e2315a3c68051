"""Coming from Smart Cron V2, the PHP wrapper this project replaces (docs/migrating.md): its task
names, its views and alerts table (cronjobs/legacy/sql_views.py), its config keys (the aliases in
cronjobs/supervisor/registry.py) and its metrics history (cronjobs/legacy/history.py).

V2 named every task `<prefix><job>` (`flagged_products_generate_daily_products`); here a task is
the bare `<job>`. CRONJOBS_LEGACY_PREFIX says which prefix the old names carry."""

from __future__ import annotations

import re

from django.conf import settings

PREFIX_RE = re.compile(r"[a-z0-9_]{0,50}")


def prefix() -> str:
    return str(getattr(settings, "CRONJOBS_LEGACY_PREFIX", "flagged_products_"))


def prefix_problem(value: str) -> str:
    """Why a prefix cannot be used ('' when it can): it is written into the views' SQL."""
    if PREFIX_RE.fullmatch(value):
        return ""
    return f"{value!r} is not up to 50 lower-case letters, digits and _"


def modern_name(legacy: str) -> str:
    """`flagged_products_generate_daily_products` -> `generate_daily_products`; a name without
    the prefix is kept as it is."""
    name = legacy.strip()
    start = prefix()
    if start and name.startswith(start) and len(name) > len(start):
        return name[len(start) :]
    return name


def legacy_name(name: str) -> str:
    return prefix() + name
