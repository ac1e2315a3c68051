from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CronjobsConfig(AppConfig):
    name = "cronjobs"
    verbose_name = "Cron jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cronjobs import checks  # noqa: F401  (registers the system check)

        post_migrate.connect(_sync_after_migrate, sender=self)


def _sync_after_migrate(sender, using="default", **kwargs) -> None:
    from cronjobs.sync import sync_all

    if using == "default":
        sync_all()
