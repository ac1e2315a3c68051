"""The control room (docs/architecture.md, "The control room"): one module per admin page.

Importing the package registers them all; CronjobsConfig.ready() imports it, so the pages exist
whether or not the admin's autodiscovery runs first.
"""

from cronjobs.admin import alerts, executions, tasks, tokens, windows

__all__ = ["alerts", "executions", "tasks", "tokens", "windows"]
