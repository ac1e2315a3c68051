"""`manage.py check` fails when a task declaration is invalid (docs/configuration.md, "Task
settings")."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks


@checks.register("cronjobs")
def check_task_declarations(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    from cronjobs.supervisor.registry import registry

    registry.load()
    found: list[checks.CheckMessage] = [
        checks.Error(
            str(error),
            hint="Fix the declaration; see docs/configuration.md, Task settings.",
            obj=error.task,
            id="cronjobs.E001",
        )
        for error in registry.errors
    ]
    found += [
        checks.Warning(
            str(warning),
            hint="The old name works; rename it. See docs/migrating.md.",
            obj=warning.task,
            id="cronjobs.W001",
        )
        for warning in registry.warnings
    ]
    return found


@checks.register("cronjobs")
def check_legacy_prefix(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    from cronjobs import legacy

    problem = legacy.prefix_problem(legacy.prefix())
    if not problem:
        return []
    return [
        checks.Error(
            f"CRONJOBS_LEGACY_PREFIX: {problem}",
            hint="It is written into the compatibility views; see docs/migrating.md.",
            id="cronjobs.E003",
        )
    ]


@checks.register("cronjobs")
def check_receiver_urls(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """A receiver or ping URL that can never work is a deploy-time error, not a 3 a.m. surprise.
    The message names the setting and shows the URL redacted."""
    from django.conf import settings

    from cronjobs.supervisor import notify

    found: list[checks.CheckMessage] = []
    urls = [("ALERT_WEBHOOK_URL", settings.ALERT_WEBHOOK_URL, notify.url_problem)]
    urls += [("ALERT_URLS", url, notify.apprise_problem) for url in settings.ALERT_URLS]
    urls += [
        ("ALERT_ESCALATION_URLS", url, notify.apprise_problem)
        for url in settings.ALERT_ESCALATION_URLS
    ]
    for name in ("CRONJOBS_PING_URL_TEMPLATE", "CRONJOBS_WATCHDOG_PING_URL"):
        urls.append((name, getattr(settings, name), notify.url_problem))
    for name, url, problem_of in urls:
        problem = problem_of(url) if url else ""
        if problem:
            found.append(
                checks.Error(
                    f"{name}: {notify.redact(url)} {problem}",
                    hint="See docs/configuration.md, Alerts and email.",
                    id="cronjobs.E002",
                )
            )
    if settings.ALERT_ESCALATE_AFTER and not settings.ALERT_ESCALATION_URLS:
        found.append(
            checks.Warning(
                "ALERT_ESCALATE_AFTER is set but ALERT_ESCALATION_URLS is empty: nothing will "
                "be escalated",
                hint="Set ALERT_ESCALATION_URLS (Apprise URLs), or unset ALERT_ESCALATE_AFTER.",
                id="cronjobs.W023",
            )
        )
    return found
