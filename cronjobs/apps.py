from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CronjobsConfig(AppConfig):
    name = "cronjobs"
    verbose_name = "Cron jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported for its side effect: registering the task-declaration system check. The
        # admin pages register themselves when the admin autodiscovers cronjobs.admin.
        from cronjobs import checks  # noqa: F401

        post_migrate.connect(_sync_after_migrate, sender=self)


def _sync_after_migrate(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    from cronjobs.supervisor.sync import sync_all

    if using == "default":
        sync_all()
